//! Platforms: Nix system names (`x86_64-linux`) and the OCI platforms they
//! become (`linux/amd64`), and which of a recipe's platforms this Nix can
//! build.
//!
//! Pure: what Nix can build ([`NixCapabilities`]) is read by
//! [`crate::nix::capabilities`]; this module parses its output and decides.
//! A recipe listing several platforms yields an OCI image index with one
//! child per platform built here; the others are reported, each with how to
//! build it (a remote builder, or a machine of that platform).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::package_set::PackageSet;

/// Nix systems armorred knows, with their OCI `architecture` and `variant`
/// (the image-spec's GOARCH names). Only Linux: images run on a Linux kernel.
const TABLE: [(&str, &str, Option<&str>); 8] = [
    ("x86_64-linux", "amd64", None),
    // containerd and podman normalize arm64's `v8` variant away; leaving it
    // out matches what they compare against.
    ("aarch64-linux", "arm64", None),
    ("i686-linux", "386", None),
    ("armv7l-linux", "arm", Some("v7")),
    ("armv6l-linux", "arm", Some("v6")),
    ("riscv64-linux", "riscv64", None),
    ("powerpc64le-linux", "ppc64le", None),
    ("s390x-linux", "s390x", None),
];

/// An OCI descriptor's `platform`: the system as image indexes name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A Nix system name armorred can make an image for, e.g. `aarch64-linux`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct System(&'static str);

impl System {
    pub const X86_64_LINUX: System = System("x86_64-linux");

    pub fn parse(s: &str) -> Result<System, String> {
        TABLE
            .iter()
            .find(|(n, _, _)| *n == s)
            .map(|(n, _, _)| System(n))
            .ok_or_else(|| {
                format!(
                    "unknown platform `{s}` (expected one of: {})",
                    System::known().join(", ")
                )
            })
    }

    /// Every system name [`System::parse`] accepts.
    pub fn known() -> Vec<&'static str> {
        TABLE.iter().map(|(n, _, _)| *n).collect()
    }

    /// The system this armorred binary runs on, if it is a known one.
    pub fn host() -> Option<System> {
        System::parse(&format!(
            "{}-{}",
            std::env::consts::ARCH,
            std::env::consts::OS
        ))
        .ok()
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// The OCI platform of images built for this system.
    pub fn oci(&self) -> Platform {
        let (_, arch, variant) = TABLE
            .iter()
            .find(|(n, _, _)| *n == self.0)
            .expect("a System is always in TABLE");
        Platform {
            architecture: (*arch).to_string(),
            os: "linux".to_string(),
            variant: variant.map(str::to_string),
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// `os/architecture[/variant]`, as podman's and skopeo's `--platform` spell it.
pub fn display(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// What this Nix can build: its own `system`, `extra-platforms`, and the
/// systems of its remote builders (`builders`, or `--builders` on our CLI).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct NixCapabilities {
    pub system: String,
    pub extra_platforms: Vec<String>,
    pub builders: Vec<RemoteBuilder>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteBuilder {
    pub uri: String,
    pub systems: Vec<String>,
}

/// How a system gets built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuiltBy {
    Local,
    ExtraPlatform,
    Remote(String),
}

impl NixCapabilities {
    /// Only the host system, without asking Nix: for recipes that list no
    /// other platform.
    pub fn local(system: &System) -> NixCapabilities {
        NixCapabilities {
            system: system.to_string(),
            ..NixCapabilities::default()
        }
    }

    pub fn can_build(&self, s: &System) -> Option<BuiltBy> {
        if self.system == s.as_str() {
            return Some(BuiltBy::Local);
        }
        if self.extra_platforms.iter().any(|p| p == s.as_str()) {
            return Some(BuiltBy::ExtraPlatform);
        }
        self.builders
            .iter()
            .find(|b| b.systems.iter().any(|x| x == s.as_str()))
            .map(|b| BuiltBy::Remote(b.uri.clone()))
    }

    /// `system (extra-platforms …, builders …)` for messages.
    fn describe(&self) -> String {
        let mut s = format!("system {}", self.system);
        if !self.extra_platforms.is_empty() {
            s.push_str(&format!(
                ", extra-platforms {}",
                self.extra_platforms.join(" ")
            ));
        }
        if self.builders.is_empty() {
            s.push_str(", no remote builders");
        }
        for b in &self.builders {
            s.push_str(&format!(", builder {} ({})", b.uri, b.systems.join(",")));
        }
        s
    }
}

/// One value of `nix show-config --json`. Nix 2.8 wraps each setting as
/// `{"value": …, "defaultValue": …, "description": …}`; a bare value is
/// accepted too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Setting<T> {
    Wrapped { value: T },
    Bare(T),
}

impl<T> Setting<T> {
    fn into_inner(self) -> T {
        match self {
            Setting::Wrapped { value } | Setting::Bare(value) => value,
        }
    }
}

/// A list setting: a JSON array, or (older Nix) one space-separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Words {
    List(Vec<String>),
    Text(String),
}

impl Words {
    fn into_vec(self) -> Vec<String> {
        match self {
            Words::List(v) => v,
            Words::Text(s) => s.split_whitespace().map(str::to_string).collect(),
        }
    }
}

/// The settings of `nix show-config --json` armorred reads (Nix 2.8 with
/// `--extra-experimental-features nix-command`; fixture
/// `tests/fixtures/nix-2.8-show-config.json`).
#[derive(Debug, Deserialize)]
pub struct ShowConfig {
    system: Setting<String>,
    #[serde(rename = "extra-platforms", default)]
    extra_platforms: Option<Setting<Words>>,
    #[serde(default)]
    builders: Option<Setting<String>>,
}

impl ShowConfig {
    /// `(system, extra-platforms, builders)`; `builders` may be `@file`.
    pub fn into_parts(self) -> (String, Vec<String>, String) {
        (
            self.system.into_inner(),
            self.extra_platforms
                .map(|s| s.into_inner().into_vec())
                .unwrap_or_default(),
            self.builders.map(Setting::into_inner).unwrap_or_default(),
        )
    }
}

/// Parses Nix's machine specification (the `builders` setting, or the file
/// an `@file` value names): entries separated by newlines or `;`, each
/// `URI [systems [key [max-jobs …]]]`, systems comma-separated, `#`
/// comments. An entry without systems builds the local system (Nix's rule).
pub fn parse_machines(text: &str, local_system: &str) -> Vec<RemoteBuilder> {
    text.split(['\n', ';'])
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let uri = fields.next()?.to_string();
            let systems = match fields.next() {
                Some(s) if s != "-" => s.split(',').map(str::to_string).collect(),
                _ => vec![local_system.to_string()],
            };
            Some(RemoteBuilder { uri, systems })
        })
        .collect()
}

/// A listed platform that will not be built here, and what would build it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedPlatform {
    pub image: String,
    pub platform: System,
    pub reason: String,
    pub hint: String,
}

impl fmt::Display for SkippedPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: platform {} is not built: {}; {}",
            self.image, self.platform, self.reason, self.hint
        )
    }
}

/// Which of a recipe's platforms to build, and in what shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSelection {
    /// Built here, in the recipe's order.
    pub build: Vec<System>,
    pub skipped: Vec<SkippedPlatform>,
    /// Several platforms were asked for: write an OCI image index even if
    /// only one child could be built, so the output's shape follows the
    /// recipe. One platform keeps the single image manifest.
    pub index: bool,
}

/// Whether [`select`] needs to ask Nix: only when a wanted platform is not
/// the host's, so single-platform builds run no extra command.
pub fn selected<'a>(
    image: &str,
    recipe: &'a [String],
    wanted: &'a [String],
) -> Result<&'a [String], String> {
    for w in wanted {
        if !recipe.contains(w) {
            return Err(format!(
                "--platform {w}: recipe `{image}` lists only {} (key `image.platforms`)",
                recipe.join(", ")
            ));
        }
    }
    Ok(if wanted.is_empty() { recipe } else { wanted })
}

/// Splits the recipe's platforms (or those `--platform` picks) into what
/// this Nix builds and what it cannot. An error when nothing is buildable.
pub fn select(
    image: &str,
    recipe: &[String],
    wanted: &[String],
    nix: &NixCapabilities,
    package_set: PackageSet,
) -> Result<PlatformSelection, String> {
    let chosen = selected(image, recipe, wanted)?;
    let mut build = Vec::new();
    let mut skipped = Vec::new();
    for name in chosen {
        let system = System::parse(name)?;
        let how = nix.can_build(&system);
        let elsewhere = format!(
            "build it on a machine of that platform (armorred build {image} --platform {system}) and combine the images into one index (README: Multi-arch)"
        );
        let skip = match (&how, package_set) {
            (Some(BuiltBy::Local), _) => None,
            (Some(_), PackageSet::Offline) | (None, PackageSet::Offline) => Some((
                format!(
                    "the offline package set compiles with this machine's clang and glibc, so it builds only {} images",
                    nix.system
                ),
                format!(
                    "use --package-set nixpkgs with a remote builder (--builders 'ssh://HOST {system}'), or {elsewhere}"
                ),
            )),
            (Some(_), PackageSet::Nixpkgs) => None,
            (None, PackageSet::Nixpkgs) => Some((
                format!("this Nix cannot build it ({})", nix.describe()),
                format!("add a remote builder (--builders 'ssh://HOST {system}'), or {elsewhere}"),
            )),
        };
        match skip {
            None => build.push(system),
            Some((reason, hint)) => skipped.push(SkippedPlatform {
                image: image.to_string(),
                platform: system,
                reason,
                hint,
            }),
        }
    }
    if build.is_empty() {
        let why: Vec<String> = skipped.iter().map(ToString::to_string).collect();
        return Err(format!(
            "`{image}`: none of its platforms can be built here:\n  {}",
            why.join("\n  ")
        ));
    }
    Ok(PlatformSelection {
        build,
        skipped,
        index: chosen.len() > 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nix_systems_map_to_oci_platforms() {
        let p = |s: &str| display(&System::parse(s).unwrap().oci());
        assert_eq!(p("x86_64-linux"), "linux/amd64");
        assert_eq!(p("aarch64-linux"), "linux/arm64");
        assert_eq!(p("i686-linux"), "linux/386");
        assert_eq!(p("armv7l-linux"), "linux/arm/v7");
        assert_eq!(p("powerpc64le-linux"), "linux/ppc64le");
        let e = System::parse("x86_64-darwin").unwrap_err();
        assert!(
            e.contains("x86_64-darwin") && e.contains("aarch64-linux"),
            "{e}"
        );
        // The OCI spelling is not a Nix system.
        assert!(System::parse("amd64").is_err());
    }

    #[test]
    fn show_config_of_nix_2_8_parses() {
        let text = include_str!("../tests/fixtures/nix-2.8-show-config.json");
        let c: ShowConfig = serde_json::from_str(text).unwrap();
        let (system, extra, builders) = c.into_parts();
        assert_eq!(system, "x86_64-linux");
        assert!(extra.contains(&"i686-linux".to_string()), "{extra:?}");
        assert_eq!(builders, "@/etc/nix/machines");
        // Bare values and space-separated lists (other Nix versions).
        let c: ShowConfig = serde_json::from_str(
            r#"{"system":"aarch64-linux","extra-platforms":"armv7l-linux armv6l-linux"}"#,
        )
        .unwrap();
        assert_eq!(
            c.into_parts(),
            (
                "aarch64-linux".into(),
                strings(&["armv7l-linux", "armv6l-linux"]),
                String::new()
            )
        );
    }

    #[test]
    fn machine_specs_parse() {
        let m = parse_machines(
            "ssh://arm aarch64-linux,armv7l-linux /k 4 1 big-parallel\n# a comment\n\n ssh://plain ; ssh-ng://x86 x86_64-linux",
            "x86_64-linux",
        );
        assert_eq!(
            m,
            [
                RemoteBuilder {
                    uri: "ssh://arm".into(),
                    systems: strings(&["aarch64-linux", "armv7l-linux"])
                },
                RemoteBuilder {
                    uri: "ssh://plain".into(),
                    systems: strings(&["x86_64-linux"])
                },
                RemoteBuilder {
                    uri: "ssh-ng://x86".into(),
                    systems: strings(&["x86_64-linux"])
                },
            ]
        );
    }

    #[test]
    fn selection_builds_what_nix_can() {
        let both = strings(&["x86_64-linux", "aarch64-linux"]);
        let mut nix = NixCapabilities::local(&System::X86_64_LINUX);
        // Offline: host only, whatever the builders.
        nix.builders = parse_machines("ssh://arm aarch64-linux", "x86_64-linux");
        let s = select("n", &both, &[], &nix, PackageSet::Offline).unwrap();
        assert_eq!(s.build, [System::X86_64_LINUX]);
        assert!(s.index);
        assert_eq!(s.skipped.len(), 1);
        let msg = s.skipped[0].to_string();
        assert!(
            msg.contains("aarch64-linux") && msg.contains("offline package set"),
            "{msg}"
        );
        assert!(
            msg.contains("--builders 'ssh://HOST aarch64-linux'"),
            "{msg}"
        );
        // nixpkgs: the remote builder makes aarch64 buildable.
        let s = select("n", &both, &[], &nix, PackageSet::Nixpkgs).unwrap();
        assert_eq!(s.build.len(), 2);
        assert!(s.skipped.is_empty() && s.index);
        // …and without it, aarch64 is skipped with the reason.
        nix.builders.clear();
        let s = select("n", &both, &[], &nix, PackageSet::Nixpkgs).unwrap();
        assert!(s.skipped[0].reason.contains("no remote builders"), "{s:?}");
        // --platform picks one: a single manifest, nothing skipped.
        let s = select(
            "n",
            &both,
            &strings(&["x86_64-linux"]),
            &nix,
            PackageSet::Offline,
        )
        .unwrap();
        assert!(!s.index && s.skipped.is_empty());
        // Nothing buildable is an error naming each platform.
        let arm = strings(&["aarch64-linux"]);
        let e = select("n", &arm, &[], &nix, PackageSet::Offline).unwrap_err();
        assert!(e.contains("none of its platforms") && e.contains("aarch64-linux"));
        let e = select(
            "n",
            &arm,
            &strings(&["x86_64-linux"]),
            &nix,
            PackageSet::Offline,
        )
        .unwrap_err();
        assert!(e.contains("--platform x86_64-linux"), "{e}");
        // A single host platform: no index.
        let s = select(
            "n",
            &strings(&["x86_64-linux"]),
            &[],
            &nix,
            PackageSet::Offline,
        )
        .unwrap();
        assert!(!s.index && s.build.len() == 1);
    }
}
