//! `armorred.toml`: project defaults, read from the current directory.
//!
//! Contract: [`ProjectConfig::load_from`] yields the defaults the file sets
//! (or none when there is no file), or a [`ConfigError`] naming the file,
//! line and key. Parsing is strict like the recipes': unknown keys, wrong
//! types and empty values are errors. Precedence, highest first: the
//! command-line flag, its environment variable, `armorred.toml`, the
//! built-in default. Relative paths in the file are relative to its
//! directory.

use crate::recipe::line_col;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const FILE_NAME: &str = "armorred.toml";
/// Built-in defaults, used when neither a flag nor the file sets a value.
pub const DEFAULT_RECIPES: &str = "recipes";
pub const DEFAULT_OUT: &str = "out";

/// The project's defaults. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Directory of recipes (`--recipes`).
    #[serde(default)]
    pub recipes: Option<PathBuf>,
    /// Output directory for layouts and archives (`--out`).
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Repository prefix for tags, e.g. `registry.example.com/armorred`.
    #[serde(default)]
    pub registry: Option<String>,
    /// Cosign private key (`sign --key`); `verify` uses the `.pub` beside it.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Layer cache directory (`build --cache-dir`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// The file the values came from, if any.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {}{message}", path.display(), key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: Option<String>,
        message: String,
    },
}

impl ProjectConfig {
    /// Reads `<dir>/armorred.toml`; no file means no defaults.
    pub fn load_from(dir: &Path) -> Result<ProjectConfig, ConfigError> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ProjectConfig::default())
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let mut c = ProjectConfig::parse(&text, &path)?;
        // Keep paths as written when the file is in the current directory,
        // so messages show what the user wrote.
        if dir != Path::new(".") && dir != Path::new("") {
            for p in [&mut c.recipes, &mut c.out, &mut c.key, &mut c.cache_dir]
                .into_iter()
                .flatten()
            {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(c)
    }

    /// Parses the file's text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<ProjectConfig, ConfigError> {
        let invalid = |span: Option<std::ops::Range<usize>>, key: Option<String>, message| {
            let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                key,
                message,
            }
        };
        let mut c: ProjectConfig =
            crate::recipe::parse_strict(text).map_err(|p| ConfigError::Invalid {
                path: path.to_path_buf(),
                line: p.line,
                column: p.column,
                key: p.key,
                message: p.message,
            })?;
        let empty_path = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str().is_empty());
        for (key, empty) in [
            ("recipes", empty_path(&c.recipes)),
            ("out", empty_path(&c.out)),
            ("key", empty_path(&c.key)),
            ("cache_dir", empty_path(&c.cache_dir)),
            (
                "registry",
                c.registry.as_ref().is_some_and(|r| r.trim().is_empty()),
            ),
        ] {
            if empty {
                return Err(invalid(
                    Some(key_offset(text, key)),
                    Some(key.to_string()),
                    "must not be empty".into(),
                ));
            }
        }
        if let Some(r) = &c.registry {
            if r.contains("://") || r.ends_with('/') || r.contains(char::is_whitespace) {
                return Err(invalid(
                    Some(key_offset(text, "registry")),
                    Some("registry".into()),
                    format!("`{r}` is not a repository prefix such as `registry.example.com/armorred` (no scheme, no trailing `/`)"),
                ));
            }
        }
        c.path = Some(path.to_path_buf());
        Ok(c)
    }

    /// The recipes directory: the flag (or `ARMORRED_RECIPES`), the file, `recipes`.
    pub fn recipes_dir(&self, flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| self.recipes.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RECIPES))
    }

    /// The output directory: the flag, the file, `out`.
    pub fn out_dir(&self, flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| self.out.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT))
    }

    /// The layer cache directory, if the flag or the file names one.
    pub fn cache_dir(&self, flag: Option<&Path>) -> Option<PathBuf> {
        flag.map(Path::to_path_buf)
            .or_else(|| self.cache_dir.clone())
    }

    /// The private key for signing, if the flag or the file names one.
    pub fn signing_key(&self, flag: Option<&Path>) -> Option<PathBuf> {
        flag.map(Path::to_path_buf).or_else(|| self.key.clone())
    }

    /// The public key for verifying: the flag, else the file's `key` with
    /// `.pub` in place of its extension (cosign's `cosign.key`/`cosign.pub`).
    pub fn public_key(&self, flag: Option<&Path>) -> Option<PathBuf> {
        flag.map(Path::to_path_buf)
            .or_else(|| self.key.as_ref().map(|k| k.with_extension("pub")))
    }

    /// The repository for an image: `<registry>/<image>`, else `localhost/armorred/<image>`.
    pub fn repository(&self, image: &str) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{image}"),
            None => format!("localhost/armorred/{image}"),
        }
    }
}

fn key_offset(text: &str, key: &str) -> std::ops::Range<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            let start = offset + (line.len() - t.len());
            return start..start + key.len();
        }
        offset += line.len();
    }
    0..0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProjectConfig, ConfigError> {
        ProjectConfig::parse(text, Path::new("armorred.toml"))
    }

    #[test]
    fn parses_every_key() {
        let c = parse(
            "recipes = \"r\"\nout = \"build\"\nregistry = \"localhost:5000/armorred\"\nkey = \"keys/cosign.key\"\ncache_dir = \"/var/cache/a\"\n",
        )
        .unwrap();
        assert_eq!(c.recipes_dir(None), Path::new("r"));
        assert_eq!(c.out_dir(None), Path::new("build"));
        assert_eq!(c.cache_dir(None).unwrap(), Path::new("/var/cache/a"));
        assert_eq!(c.signing_key(None).unwrap(), Path::new("keys/cosign.key"));
        assert_eq!(c.public_key(None).unwrap(), Path::new("keys/cosign.pub"));
        assert_eq!(c.repository("nginx"), "localhost:5000/armorred/nginx");
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_builtins() {
        let c = parse("out = \"build\"\n").unwrap();
        assert_eq!(c.out_dir(Some(Path::new("x"))), Path::new("x"));
        assert_eq!(c.out_dir(None), Path::new("build"));
        assert_eq!(c.recipes_dir(None), Path::new(DEFAULT_RECIPES));
        let none = ProjectConfig::default();
        assert_eq!(none.out_dir(None), Path::new(DEFAULT_OUT));
        assert_eq!(none.repository("nginx"), "localhost/armorred/nginx");
        assert!(none.signing_key(None).is_none());
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_located() {
        let e = parse("out = \"o\"\noutput = \"x\"\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("armorred.toml:2:"), "{s}");
        assert!(s.contains("unknown field `output`"), "{s}");
        let e = parse("recipes = 3\n").unwrap_err().to_string();
        assert!(e.contains("key `recipes`"), "{e}");
        let e = parse("key = \"\"\n").unwrap_err().to_string();
        assert!(e.contains("must not be empty"), "{e}");
        let e = parse("registry = \"https://r.example\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("repository prefix"), "{e}");
    }

    #[test]
    fn missing_file_means_no_defaults_and_relative_paths_follow_the_file() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            ProjectConfig::load_from(d.path()).unwrap(),
            ProjectConfig::default()
        );
        std::fs::write(d.path().join(FILE_NAME), "out = \"o\"\nkey = \"/k.key\"\n").unwrap();
        let c = ProjectConfig::load_from(d.path()).unwrap();
        assert_eq!(c.out_dir(None), d.path().join("o"));
        assert_eq!(c.signing_key(None).unwrap(), Path::new("/k.key"));
    }
}
