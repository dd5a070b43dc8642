//! The small rootfs extras armorred makes itself, beside the closure:
//! `/etc/passwd` and `/etc/group` with nobody 65534, `/etc/nsswitch.conf`,
//! `/tmp` (1777), the recipe's writable directories owned by 65534 (1777), links that
//! put the entrypoint on a normal path, the entrypoint compatibility program
//! (and its built-in step markers and writable directories) where the tier
//! ships it, and a shell and coreutils only where the tier
//! asks for them. Pure: the caller supplies the shell's applet names.
//! [`check_links`] alone reads the built output, to prove the links resolve.

use std::collections::BTreeMap;
use std::path::Path;

use crate::nix::BuiltOutputs;
use crate::oci::tarball::RootfsEntry;
use crate::plan::BuildPlan;

pub const NOBODY: u64 = 65534;

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RootfsError {
    #[error("`{path}` is both a directory and a {other} in the rootfs")]
    Conflict { path: String, other: &'static str },
    #[error("the tier asks for a shell or coreutils, but the package set built none")]
    NoShell,
    #[error("the tier ships the entrypoint compatibility program, but the package set built none")]
    NoEntrypoint,
}

/// A `[runtime.links]` entry that would dangle in the image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{recipe}: runtime link `{link}` → `{target}` (tier `{tier}`) does not resolve inside \
     the image's closure: {problem}"
)]
pub struct LinkError {
    pub recipe: String,
    pub tier: String,
    pub link: String,
    pub target: String,
    pub problem: String,
}

/// Every runtime link must land on something the image holds: its target,
/// relative to the built package output, must exist, and after following
/// every symlink (into other store paths too) it must still be inside the
/// closure (`in_closure`). Reads the built output, the only I/O here; it
/// runs on what Nix built, so it holds for every package set.
pub fn check_links(
    plan: &BuildPlan,
    package: &Path,
    in_closure: impl Fn(&Path) -> bool,
) -> Result<(), LinkError> {
    for (link, target) in &plan.runtime.links {
        let path = package.join(target);
        let problem = match std::fs::canonicalize(&path) {
            Err(e) => format!("`{}` is missing from the package ({e})", path.display()),
            Ok(real) if !in_closure(&real) => format!(
                "`{}` resolves to `{}`, outside the closure",
                path.display(),
                real.display()
            ),
            Ok(_) => continue,
        };
        return Err(LinkError {
            recipe: plan.recipe_path.display().to_string(),
            tier: plan.tier.to_string(),
            link: link.clone(),
            target: target.clone(),
            problem,
        });
    }
    Ok(())
}

/// Builds the sorted rootfs entries for `plan`.
pub fn rootfs_entries(
    plan: &BuildPlan,
    built: &BuiltOutputs,
    shell_applets: &[String],
) -> Result<Vec<RootfsEntry>, RootfsError> {
    let mut t = Tree::default();
    t.dir("/etc", 0o755, 0);
    t.file("/etc/passwd", PASSWD);
    t.file("/etc/group", GROUP);
    t.file("/etc/nsswitch.conf", NSSWITCH);
    t.dir("/tmp", 0o1777, 0);
    for w in &plan.runtime.writable {
        if w == "/tmp" {
            continue;
        }
        t.parents(w);
        // Sticky and world-writable like /tmp: a tmpfs mounted over the
        // directory (`--tmpfs`, with a read-only root) takes its mode but
        // is owned by root (runc), so only this mode keeps it writable for
        // the image's user.
        t.dir(w, 0o1777, NOBODY);
    }
    for (dest, target) in &plan.runtime.links {
        t.link(dest, &format!("{}/{target}", built.package))?;
    }
    if let Some(ec) = &plan.entrypoint_compat {
        let programs = built.entrypoint.as_ref().ok_or(RootfsError::NoEntrypoint)?;
        t.link(&ec.path, &format!("{programs}/{}", ec.binary()))?;
        if let Some(steps) = &ec.steps {
            t.link(steps, &format!("{programs}/{}", ec.steps_dir()))?;
        }
    }
    if plan.shell || plan.coreutils {
        let shell = built.shell.as_ref().ok_or(RootfsError::NoShell)?;
        if plan.shell {
            t.link("/bin/sh", &format!("{shell}/bin/sh"))?;
        }
        if plan.coreutils {
            for a in shell_applets.iter().filter(|a| a.as_str() != "sh") {
                t.link(&format!("/bin/{a}"), &format!("{shell}/bin/{a}"))?;
            }
        }
    }
    Ok(t.0.into_values().collect())
}

#[derive(Default)]
struct Tree(BTreeMap<String, RootfsEntry>);

impl Tree {
    fn dir(&mut self, path: &str, mode: u32, owner: u64) {
        self.0.insert(
            path.to_string(),
            RootfsEntry::Dir {
                path: path.to_string(),
                mode,
                uid: owner,
                gid: owner,
            },
        );
    }

    fn parents(&mut self, path: &str) {
        let mut cur = String::new();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            cur.push('/');
            cur.push_str(p);
            if !self.0.contains_key(&cur) {
                self.dir(&cur.clone(), 0o755, 0);
            }
        }
    }

    fn file(&mut self, path: &str, data: &str) {
        self.0.insert(
            path.to_string(),
            RootfsEntry::File {
                path: path.to_string(),
                mode: 0o644,
                data: data.as_bytes().to_vec(),
            },
        );
    }

    fn link(&mut self, path: &str, target: &str) -> Result<(), RootfsError> {
        self.parents(path);
        if matches!(self.0.get(path), Some(RootfsEntry::Dir { .. })) {
            return Err(RootfsError::Conflict {
                path: path.to_string(),
                other: "symlink",
            });
        }
        self.0.insert(
            path.to_string(),
            RootfsEntry::Symlink {
                path: path.to_string(),
                target: target.to_string(),
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanOptions;
    use crate::recipe::Recipe;
    use crate::store_path::StorePath;
    use crate::tier::Tier;

    fn plan(tier: Tier) -> BuildPlan {
        let r = Recipe::parse(
            crate::recipe::tests_support::NGINX,
            std::path::Path::new("recipes/nginx.toml"),
        )
        .unwrap();
        BuildPlan::new(&r, tier, &PlanOptions::default())
    }

    fn built(shell: bool) -> BuiltOutputs {
        BuiltOutputs {
            package: StorePath::parse("/nix/store/0c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-nginx-1.22.1")
                .unwrap(),
            shell: shell.then(|| {
                StorePath::parse("/nix/store/1c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-busybox-1.35.0")
                    .unwrap()
            }),
            entrypoint: None,
        }
    }

    fn paths(e: &[RootfsEntry]) -> Vec<&str> {
        e.iter().map(RootfsEntry::path).collect()
    }

    #[test]
    fn hardened_has_no_shell() {
        let e = rootfs_entries(&plan(Tier::Hardened), &built(false), &[]).unwrap();
        assert_eq!(
            paths(&e),
            [
                "/etc",
                "/etc/group",
                "/etc/nsswitch.conf",
                "/etc/passwd",
                "/tmp",
                "/usr",
                "/usr/sbin",
                "/usr/sbin/nginx",
                "/var",
                "/var/cache",
                "/var/cache/nginx"
            ]
        );
        assert!(matches!(
            e.last(),
            Some(RootfsEntry::Dir { uid: 65534, .. })
        ));
        assert!(matches!(
            &e[4],
            RootfsEntry::Dir {
                mode: 0o1777,
                uid: 0,
                ..
            }
        ));
        let RootfsEntry::Symlink { target, .. } = &e[7] else {
            panic!()
        };
        assert!(target.ends_with("-nginx-1.22.1/bin/nginx"));
        let RootfsEntry::File { data, .. } = &e[3] else {
            panic!()
        };
        assert!(String::from_utf8_lossy(data).contains("nobody:x:65534:65534"));
    }

    #[test]
    fn the_entrypoint_program_brings_its_step_markers_and_writable_dirs() {
        let text = crate::recipe::tests_support::NGINX.replacen(
            "coreutils = false\n",
            "coreutils = false\nentrypoint_compat = true\n",
            1,
        )
            + "\n[entrypoint_compat]\nprogram = \"nginx\"\npath = \"/docker-entrypoint.sh\"\n\
             entrypoint = [\"/docker-entrypoint.sh\"]\nsteps = \"/docker-entrypoint.d\"\n\
             writable = [\"/etc/nginx/stream-conf.d\"]\n";
        let r = Recipe::parse(&text, std::path::Path::new("recipes/nginx.toml")).unwrap();
        let mut b = built(false);
        b.entrypoint = Some(
            StorePath::parse("/nix/store/2c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-armorred-entrypoint-1.0")
                .unwrap(),
        );
        let hardened = BuildPlan::new(&r, Tier::Hardened, &PlanOptions::default());
        let e = rootfs_entries(&hardened, &b, &[]).unwrap();
        let link = |path: &str| {
            e.iter().find_map(|x| match x {
                RootfsEntry::Symlink { path: p, target } if p == path => Some(target.as_str()),
                _ => None,
            })
        };
        assert_eq!(
            link("/docker-entrypoint.d"),
            Some("/nix/store/2c0k2r4vvhz1yk9p3dn6s2d7jfq2b9g0-armorred-entrypoint-1.0/share/nginx-entrypoint.d")
        );
        assert!(e.iter().any(|x| matches!(x,
            RootfsEntry::Dir { path, mode: 0o1777, uid: 65534, .. } if path == "/etc/nginx/stream-conf.d")));
        // a tier without the program has neither
        let locked = BuildPlan::new(&r, Tier::Locked, &PlanOptions::default());
        let p = rootfs_entries(&locked, &built(true), &[]).unwrap();
        assert!(!paths(&p).contains(&"/docker-entrypoint.d"));
        assert!(!paths(&p).contains(&"/etc/nginx/stream-conf.d"));
    }

    #[test]
    fn locked_gets_shell_and_coreutils() {
        let applets = vec!["sh".to_string(), "ls".into(), "cat".into()];
        let e = rootfs_entries(&plan(Tier::Locked), &built(true), &applets).unwrap();
        let p = paths(&e);
        assert!(p.contains(&"/bin/sh") && p.contains(&"/bin/ls") && p.contains(&"/bin/cat"));
        assert_eq!(p.iter().filter(|x| x.starts_with("/bin/")).count(), 3);
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(p, sorted, "parents come before children");
    }

    #[test]
    fn links_must_resolve_inside_the_closure() {
        let store = tempfile::tempdir().unwrap();
        let store = store.path().canonicalize().unwrap();
        let pkg = store.join("pkg");
        let other = store.join("other");
        std::fs::create_dir_all(pkg.join("bin")).unwrap();
        std::fs::create_dir_all(other.join("html")).unwrap();
        std::fs::write(pkg.join("bin/nginx"), "").unwrap();
        std::os::unix::fs::symlink(other.join("html"), pkg.join("html")).unwrap();
        std::os::unix::fs::symlink("/etc", pkg.join("host-etc")).unwrap();
        std::os::unix::fs::symlink("nowhere", pkg.join("dangling")).unwrap();
        let in_closure = |p: &Path| p.starts_with(&store);
        let with = |target: &str| {
            let mut p = plan(Tier::Hardened);
            p.runtime.links.clear();
            p.runtime
                .links
                .insert("/usr/sbin/nginx".into(), "bin/nginx".into());
            p.runtime.links.insert("/srv/x".into(), target.into());
            check_links(&p, &pkg, in_closure)
        };
        // A file in the package, and a link into another closure path.
        assert_eq!(with("bin/nginx"), Ok(()));
        assert_eq!(with("html"), Ok(()));
        for (target, why) in [
            ("etc/nginx", "is missing from the package"),
            ("dangling", "is missing from the package"),
            ("host-etc", "outside the closure"),
            ("../../..", "outside the closure"),
        ] {
            let e = with(target).unwrap_err();
            assert_eq!((e.link.as_str(), e.target.as_str()), ("/srv/x", target));
            let msg = e.to_string();
            for needle in ["recipes/nginx.toml", "`/srv/x`", "tier `hardened`", why] {
                assert!(msg.contains(needle), "`{needle}` not in: {msg}");
            }
        }
    }

    #[test]
    fn missing_shell_is_an_error() {
        assert_eq!(
            rootfs_entries(&plan(Tier::Locked), &built(false), &[]),
            Err(RootfsError::NoShell)
        );
    }
}
