//! `armorred compat`: does an image keep its upstream's runtime contract?
//!
//! Contract: [`RuntimeContract::from_config`] reads the contract from an
//! image config (entrypoint, cmd, exposed ports, env names, volumes,
//! working dir, stop signal, user) with runtime defaults filled in, so an
//! unset working dir equals `/` and an unset user equals `root`.
//! [`compare`] (pure) lists each difference; [`judge`] weighs them against
//! the recipe's `[[compat.allowed]]`: in the hardened tier, which promises
//! a drop-in replacement, an undeclared difference is an error; in the
//! locked tier every difference is a warning.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::oci::layout::Layout;
use crate::recipe::{parse_port, CompatAllowance, CompatField, CompatValue};
use crate::report::OpenedImage;
use crate::tier::Tier;

/// The parts of an image config a deployment depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeContract {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `80/tcp`.
    pub ports: BTreeSet<String>,
    /// Names only: values such as `PATH` legitimately differ.
    pub env: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
    /// `/` when unset.
    pub workdir: String,
    /// `SIGTERM` when unset.
    pub stop_signal: String,
    /// `root` when unset.
    pub user: String,
}

fn normalize_port(p: &str) -> String {
    parse_port(p)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| p.to_string())
}

fn normalize_signal(s: &str) -> String {
    let s = s.trim().to_ascii_uppercase();
    if s.is_empty() {
        "SIGTERM".into()
    } else if s.starts_with("SIG") || s.chars().all(|c| c.is_ascii_digit()) {
        s
    } else {
        format!("SIG{s}")
    }
}

impl RuntimeContract {
    pub fn from_config(config: &serde_json::Value) -> RuntimeContract {
        let c = config.get("config");
        let at = |k: &str| c.and_then(|c| c.get(k));
        let list = |k: &str| -> Vec<String> {
            at(k)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default()
        };
        let keys = |k: &str| -> BTreeSet<String> {
            at(k)
                .and_then(|v| v.as_object())
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let text = |k: &str| {
            at(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let workdir = text("WorkingDir");
        let user = text("User");
        RuntimeContract {
            entrypoint: list("Entrypoint"),
            cmd: list("Cmd"),
            ports: keys("ExposedPorts")
                .iter()
                .map(|p| normalize_port(p))
                .collect(),
            env: list("Env")
                .iter()
                .map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k).to_string())
                .collect(),
            volumes: keys("Volumes"),
            workdir: if workdir.is_empty() {
                "/".into()
            } else {
                workdir
            },
            stop_signal: normalize_signal(&text("StopSignal")),
            user: if user.is_empty() { "root".into() } else { user },
        }
    }

    /// Reads the contract of an image in a layout.
    pub fn of_image(img: &OpenedImage) -> Result<RuntimeContract> {
        let layout = Layout::open(&img.dir)?;
        let loaded = layout
            .load_image(img.reference.as_deref())
            .with_context(|| format!("reading {}", img.source))?;
        Ok(RuntimeContract::from_config(&loaded.config))
    }
}

/// One way the image departs from the upstream contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A single-valued field differs.
    Changed { upstream: String, ours: String },
    /// A list field (entrypoint, cmd) differs.
    ChangedList {
        upstream: Vec<String>,
        ours: Vec<String>,
    },
    /// The upstream has the item (a port, env name, volume); we do not.
    Missing { item: String },
    /// We have an item the upstream does not.
    Added { item: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The recipe declares the difference.
    Allowed { reason: String },
    /// Undeclared, in the hardened tier: the command fails.
    Error,
    /// Undeclared, in the locked tier, which does not promise drop-in.
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub field: CompatField,
    #[serde(flatten)]
    pub change: Change,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// Every difference between `upstream` and `ours`, in field order.
pub fn compare(upstream: &RuntimeContract, ours: &RuntimeContract) -> Vec<(CompatField, Change)> {
    let mut out = Vec::new();
    for (field, u, o) in [
        (
            CompatField::Entrypoint,
            &upstream.entrypoint,
            &ours.entrypoint,
        ),
        (CompatField::Cmd, &upstream.cmd, &ours.cmd),
    ] {
        if u != o {
            out.push((
                field,
                Change::ChangedList {
                    upstream: u.clone(),
                    ours: o.clone(),
                },
            ));
        }
    }
    for (field, u, o) in [
        (CompatField::Ports, &upstream.ports, &ours.ports),
        (CompatField::Env, &upstream.env, &ours.env),
        (CompatField::Volumes, &upstream.volumes, &ours.volumes),
    ] {
        for item in u.difference(o) {
            out.push((field, Change::Missing { item: item.clone() }));
        }
        for item in o.difference(u) {
            out.push((field, Change::Added { item: item.clone() }));
        }
    }
    for (field, u, o) in [
        (CompatField::Workdir, &upstream.workdir, &ours.workdir),
        (
            CompatField::StopSignal,
            &upstream.stop_signal,
            &ours.stop_signal,
        ),
        (CompatField::User, &upstream.user, &ours.user),
    ] {
        if u != o {
            out.push((
                field,
                Change::Changed {
                    upstream: u.clone(),
                    ours: o.clone(),
                },
            ));
        }
    }
    out
}

/// Whether `a` declares this difference: same field, and the value (when
/// given) names what we have (scalar fields, entrypoint, cmd) or the item
/// that is missing or added (ports, env, volumes).
fn declares(a: &CompatAllowance, field: CompatField, change: &Change) -> bool {
    if *a.field.get_ref() != field {
        return false;
    }
    let Some(v) = &a.value else {
        return true;
    };
    match (v.get_ref(), change) {
        (CompatValue::Many(want), Change::ChangedList { ours, .. }) => want == ours,
        (CompatValue::One(want), Change::Changed { ours, .. }) => match field {
            CompatField::StopSignal => normalize_signal(want) == *ours,
            _ => want == ours,
        },
        (CompatValue::One(want), Change::Missing { item } | Change::Added { item }) => {
            match field {
                CompatField::Ports => normalize_port(want) == *item,
                _ => want == item,
            }
        }
        _ => false,
    }
}

/// The outcome for one tier.
#[derive(Debug, Clone, Serialize)]
pub struct CompatReport {
    pub image: String,
    pub tier: Tier,
    pub upstream: String,
    pub differences: Vec<Difference>,
    /// Declared differences the images no longer show (`field` and reason).
    pub unused_allowances: Vec<String>,
    pub errors: usize,
    pub warnings: usize,
}

impl CompatReport {
    pub fn passed(&self) -> bool {
        self.errors == 0
    }

    /// The fields whose differences got `verdict`, each named once.
    pub fn fields(&self, verdict: &Verdict) -> String {
        let mut f: Vec<&str> = Vec::new();
        for d in self.differences.iter().filter(|d| &d.verdict == verdict) {
            if !f.contains(&d.field.as_str()) {
                f.push(d.field.as_str());
            }
        }
        f.join(", ")
    }
}

/// Weighs the differences against the recipe's declarations.
pub fn judge(
    image: &str,
    tier: Tier,
    upstream_name: &str,
    diffs: Vec<(CompatField, Change)>,
    allowed: &[CompatAllowance],
) -> CompatReport {
    let mut used = vec![false; allowed.len()];
    let differences: Vec<Difference> = diffs
        .into_iter()
        .map(|(field, change)| {
            let hit = allowed.iter().position(|a| declares(a, field, &change));
            let verdict = match hit {
                Some(i) => {
                    used[i] = true;
                    Verdict::Allowed {
                        reason: allowed[i].reason.get_ref().clone(),
                    }
                }
                None if tier == Tier::Hardened => Verdict::Error,
                None => Verdict::Warning,
            };
            Difference {
                field,
                change,
                verdict,
            }
        })
        .collect();
    let count = |v: &Verdict| differences.iter().filter(|d| &d.verdict == v).count();
    CompatReport {
        image: image.to_string(),
        tier,
        upstream: upstream_name.to_string(),
        errors: count(&Verdict::Error),
        warnings: count(&Verdict::Warning),
        unused_allowances: allowed
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(a, _)| format!("{}: {}", a.field.get_ref(), a.reason.get_ref()))
            .collect(),
        differences,
    }
}

fn quote_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings serialize")
}

fn describe(d: &Difference) -> String {
    match &d.change {
        Change::Changed { upstream, ours } => format!("upstream `{upstream}`, image `{ours}`"),
        Change::ChangedList { upstream, ours } => {
            format!(
                "upstream {}, image {}",
                quote_list(upstream),
                quote_list(ours)
            )
        }
        Change::Missing { item } => format!("`{item}`: upstream has it, the image does not"),
        Change::Added { item } => format!("`{item}`: the image has it, upstream does not"),
    }
}

/// Text for the terminal: one line per difference.
pub fn render(reports: &[CompatReport]) -> String {
    let mut s = String::new();
    for r in reports {
        let _ = writeln!(s, "{} ({} tier) vs {}", r.image, r.tier, r.upstream);
        if r.differences.is_empty() {
            let _ = writeln!(s, "  no differences");
        }
        for d in &r.differences {
            let (tag, why) = match &d.verdict {
                Verdict::Allowed { reason } => ("allowed", format!(" — {reason}")),
                Verdict::Error => (
                    "ERROR",
                    " — not declared in the recipe's [[compat.allowed]]".into(),
                ),
                Verdict::Warning => ("warning", String::new()),
            };
            let _ = writeln!(
                s,
                "  {tag:<8} {:<12} {}{why}",
                d.field.as_str(),
                describe(d)
            );
        }
        for u in &r.unused_allowances {
            let _ = writeln!(s, "  unused   allowance {u}");
        }
        let _ = writeln!(
            s,
            "  {} difference(s): {} allowed, {} error(s), {} warning(s)",
            r.differences.len(),
            r.differences.len() - r.errors - r.warnings,
            r.errors,
            r.warnings
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Recipe;
    use serde_json::json;

    fn upstream() -> RuntimeContract {
        RuntimeContract::from_config(&json!({"config": {
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "ExposedPorts": {"80/tcp": {}},
            "Env": ["PATH=/usr/bin", "NGINX_VERSION=1.22.1"],
            "StopSignal": "SIGQUIT",
        }}))
    }

    fn ours() -> RuntimeContract {
        RuntimeContract::from_config(&json!({"config": {
            "Entrypoint": ["/usr/sbin/nginx"],
            "Cmd": ["-g", "daemon off;"],
            "ExposedPorts": {"8080/tcp": {}},
            "Env": ["PATH=/bin"],
            "WorkingDir": "/",
            "StopSignal": "SIGQUIT",
            "User": "65534",
        }}))
    }

    #[test]
    fn defaults_make_unset_equal_to_explicit() {
        let a = RuntimeContract::from_config(&json!({"config": {}}));
        assert_eq!(a.workdir, "/");
        assert_eq!(a.user, "root");
        assert_eq!(a.stop_signal, "SIGTERM");
        let b = RuntimeContract::from_config(
            &json!({"config": {"StopSignal": "term", "WorkingDir": "/"}}),
        );
        assert!(compare(&a, &b).is_empty());
    }

    #[test]
    fn every_field_difference_is_listed() {
        let d = compare(&upstream(), &ours());
        let fields: Vec<&str> = d.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["entrypoint", "cmd", "ports", "ports", "env", "user"],
            "{d:?}"
        );
        assert!(d.contains(&(
            CompatField::Ports,
            Change::Missing {
                item: "80/tcp".into()
            }
        )));
        assert!(d.contains(&(
            CompatField::Env,
            Change::Missing {
                item: "NGINX_VERSION".into()
            }
        )));
    }

    fn allowed(toml_text: &str) -> Vec<CompatAllowance> {
        let text = crate::recipe::tests_support::NGINX.to_string() + toml_text;
        Recipe::parse(&text, std::path::Path::new("recipes/nginx.toml"))
            .unwrap()
            .compat
            .allowed
    }

    #[test]
    fn declared_differences_pass_in_hardened_and_the_rest_fail() {
        let a = allowed(
            r#"
[[compat.allowed]]
field = "user"
value = "65534"
reason = "runs as nobody"

[[compat.allowed]]
field = "ports"
reason = "non-root listens on 8080"

[[compat.allowed]]
field = "entrypoint"
value = ["/usr/sbin/nginx"]
reason = "no shell, no entrypoint script"

[[compat.allowed]]
field = "volumes"
reason = "stale"
"#,
        );
        let r = judge(
            "nginx",
            Tier::Hardened,
            "up",
            compare(&upstream(), &ours()),
            &a,
        );
        let errors: Vec<&str> = r
            .differences
            .iter()
            .filter(|d| d.verdict == Verdict::Error)
            .map(|d| d.field.as_str())
            .collect();
        assert_eq!(errors, ["cmd", "env"]);
        assert!(!r.passed());
        assert_eq!(r.unused_allowances, ["volumes: stale"]);
        let text = render(std::slice::from_ref(&r));
        assert!(text.contains("ERROR    cmd"), "{text}");
        assert!(text.contains("allowed  user"), "{text}");

        let l = judge(
            "nginx",
            Tier::Locked,
            "up",
            compare(&upstream(), &ours()),
            &a,
        );
        assert!(l.passed());
        assert_eq!(l.warnings, 2);
    }

    #[test]
    fn a_value_must_match_what_the_image_has() {
        let a = allowed(
            r#"
[[compat.allowed]]
field = "user"
value = "1000"
reason = "wrong uid"

[[compat.allowed]]
field = "ports"
value = "8080"
reason = "only the added port"

[[compat.allowed]]
field = "stop_signal"
value = "quit"
reason = "normalized"
"#,
        );
        let mut o = ours();
        o.stop_signal = "SIGQUIT".into();
        let mut u = upstream();
        u.stop_signal = "SIGTERM".into();
        let r = judge("nginx", Tier::Hardened, "up", compare(&u, &o), &a);
        let verdict = |f: CompatField, item: Option<&str>| {
            r.differences
                .iter()
                .find(|d| {
                    d.field == f
                        && match (&d.change, item) {
                            (Change::Missing { item: i } | Change::Added { item: i }, Some(x)) => {
                                i == x
                            }
                            (_, None) => true,
                            _ => false,
                        }
                })
                .unwrap()
                .verdict
                .clone()
        };
        assert_eq!(verdict(CompatField::User, None), Verdict::Error);
        assert_eq!(verdict(CompatField::Ports, Some("80/tcp")), Verdict::Error);
        assert!(matches!(
            verdict(CompatField::Ports, Some("8080/tcp")),
            Verdict::Allowed { .. }
        ));
        assert!(matches!(
            verdict(CompatField::StopSignal, None),
            Verdict::Allowed { .. }
        ));
    }
}
