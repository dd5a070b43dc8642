//! Path lookup inside a merged rootfs listing, following symlinks the way
//! the kernel would inside the container (absolute targets restart at the
//! image root, never at the host's).

use std::collections::{BTreeMap, BTreeSet};

use super::{FileKind, ImageFile};

/// Linux gives up after 40 symlinks in one lookup (`MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: usize = 40;

/// Lexically normalizes an absolute path: collapses `//`, `.` and `..`
/// (`..` at the root stays at the root) and drops a trailing slash.
pub(crate) fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Resolves paths against an image's file listing (the merged rootfs the
/// image reader, [`crate::oci::rootfs_view::RootfsView`], produced); it
/// reads no layer itself.
pub(crate) struct PathResolver<'a> {
    entries: BTreeMap<String, &'a ImageFile>,
    /// Parents of listed paths: layers need not list every directory.
    implicit_dirs: BTreeSet<String>,
}

impl<'a> PathResolver<'a> {
    pub(crate) fn new(files: &'a [ImageFile]) -> Self {
        let mut entries = BTreeMap::new();
        let mut implicit_dirs = BTreeSet::new();
        for f in files {
            let path = normalize(&f.path);
            let mut parent = path.as_str();
            while let Some((p, _)) = parent.rsplit_once('/') {
                let p = if p.is_empty() { "/" } else { p };
                if !implicit_dirs.insert(p.to_string()) || p == "/" {
                    break;
                }
                parent = p;
            }
            entries.insert(path, f);
        }
        implicit_dirs.insert("/".to_string());
        PathResolver {
            entries,
            implicit_dirs,
        }
    }

    /// Follows every symlink (intermediate and final) and hardlink and
    /// returns the path of what `path` names, or `None` if it does not exist,
    /// a component is not a directory, or the symlinks loop.
    pub(crate) fn resolve(&self, path: &str) -> Option<String> {
        let mut pending: Vec<String> = components(path).rev().map(str::to_string).collect();
        let mut cur = String::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            if comp == ".." {
                if let Some((parent, _)) = cur.rsplit_once('/') {
                    cur.truncate(parent.len());
                }
                continue;
            }
            let candidate = format!("{cur}/{comp}");
            let target = match self.entries.get(&candidate).map(|f| &f.kind) {
                Some(FileKind::Symlink { target }) => target,
                // A hardlink names the same inode as its target, which is
                // where the content lives.
                Some(FileKind::Hardlink { target }) if pending.is_empty() => target,
                Some(FileKind::Dir) => {
                    cur = candidate;
                    continue;
                }
                Some(_) if pending.is_empty() => return Some(candidate),
                Some(_) => return None,
                None if self.implicit_dirs.contains(&candidate) => {
                    cur = candidate;
                    continue;
                }
                None => return None,
            };
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return None;
            }
            let is_hardlink = matches!(
                self.entries.get(&candidate).map(|f| &f.kind),
                Some(FileKind::Hardlink { .. })
            );
            // Tar hardlink targets are archive-relative (no leading slash)
            // but still name a path from the root.
            if target.starts_with('/') || is_hardlink {
                cur.clear();
            }
            pending.extend(components(target).rev().map(str::to_string));
        }
        Some(if cur.is_empty() { "/".to_string() } else { cur })
    }

    /// What `path` resolves to, if that is a regular file.
    pub(crate) fn resolve_file(&self, path: &str) -> Option<String> {
        let resolved = self.resolve(path)?;
        match self.entries.get(&resolved).map(|f| &f.kind) {
            Some(FileKind::File) => Some(resolved),
            _ => None,
        }
    }
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, kind: FileKind) -> ImageFile {
        ImageFile {
            path: path.to_string(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
        }
    }
    fn link(path: &str, target: &str) -> ImageFile {
        f(
            path,
            FileKind::Symlink {
                target: target.into(),
            },
        )
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("/a//b/./c/"), "/a/b/c");
        assert_eq!(normalize("/a/../../b"), "/b");
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("/nix/store/x/bin/../lib"), "/nix/store/x/lib");
    }

    #[test]
    fn follows_links_inside_the_view() {
        let files = vec![
            link("/bin", "usr/bin"),
            f("/usr/bin/busybox", FileKind::File),
            link("/usr/bin/sh", "busybox"),
            link("/usr/bin/ash", "/bin/sh"),
            link("/usr/bin/dangling", "/nope"),
            link("/loop/a", "b"),
            link("/loop/b", "a"),
            f(
                "/usr/bin/hard",
                FileKind::Hardlink {
                    target: "usr/bin/busybox".into(),
                },
            ),
            f("/etc", FileKind::Dir),
            link("/etc/up", "../../../usr/bin/busybox"),
            f("/nix/store/aaa-x/bin/x", FileKind::File),
        ];
        let v = PathResolver::new(&files);
        assert_eq!(
            v.resolve_file("/bin/sh").as_deref(),
            Some("/usr/bin/busybox")
        );
        assert_eq!(
            v.resolve_file("/bin/ash").as_deref(),
            Some("/usr/bin/busybox")
        );
        assert_eq!(
            v.resolve_file("/bin/hard").as_deref(),
            Some("/usr/bin/busybox")
        );
        assert_eq!(
            v.resolve_file("/etc/up").as_deref(),
            Some("/usr/bin/busybox")
        );
        assert_eq!(v.resolve("/bin").as_deref(), Some("/usr/bin"));
        // Unlisted parent directories exist implicitly.
        assert_eq!(v.resolve("/nix/store").as_deref(), Some("/nix/store"));
        assert_eq!(
            v.resolve_file("/nix/store/aaa-x/bin/x").as_deref(),
            Some("/nix/store/aaa-x/bin/x")
        );
        assert_eq!(v.resolve("/usr/bin/dangling"), None);
        assert_eq!(v.resolve("/loop/a"), None);
        assert_eq!(v.resolve("/usr/bin/busybox/sh"), None);
        assert_eq!(v.resolve_file("/usr/bin"), None);
    }
}
