//! Upstream test-suite records: what a package's own test suite reported when
//! Nix built that package.
//!
//! Contract: the offline package set runs each source's test suite inside the
//! derivation that ships (nix/offline/upstream-tests.nix) and leaves
//! `<out>/nix-support/armorred-tests.json` (schema
//! `armorred.upstream-tests/v1`). [`read_records`] finds those records in a
//! closure; [`check`] fails when a suite the recipe requires is missing, ran
//! in another mode, failed, passed nothing, or left out tags the recipe does
//! not declare for the tier. Nothing here runs a test: the facts come from
//! the build.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::closure::Closure;
use crate::store_path::StorePath;

/// Where a package output keeps its record.
pub const RECORD_FILE: &str = "nix-support/armorred-tests.json";
/// The record's schema id.
pub const SCHEMA: &str = "armorred.upstream-tests/v1";

/// Which of the package set's suites the builds run: each package's CI
/// subset, or every suite whole. The subsets are defined in the package
/// expressions (nix/offline/pkgs/*.nix).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamTestMode {
    #[default]
    Ci,
    Full,
}

impl fmt::Display for UpstreamTestMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpstreamTestMode::Ci => "ci",
            UpstreamTestMode::Full => "full",
        })
    }
}

impl std::str::FromStr for UpstreamTestMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ci" => Ok(UpstreamTestMode::Ci),
            "full" => Ok(UpstreamTestMode::Full),
            other => Err(format!(
                "unknown upstream test mode `{other}` (known: ci, full)"
            )),
        }
    }
}

/// One package's record, as nix/offline/upstream_tests.py writes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestRecord {
    pub schema: String,
    pub package: String,
    #[serde(default)]
    pub version: String,
    pub mode: UpstreamTestMode,
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub suites: Vec<SuiteRecord>,
}

/// One suite run inside a package's build.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuiteRecord {
    pub suite: String,
    /// The exact command, as run in the build tree.
    pub command: String,
    /// `full`, or what the CI subset is.
    pub scope: String,
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    #[serde(default)]
    pub failed_tests: Vec<String>,
    #[serde(default)]
    pub skipped_tags: Vec<SkippedTag>,
    #[serde(default)]
    pub seconds: u64,
}

/// A tag (or test file) a suite left out on purpose, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SkippedTag {
    pub tag: String,
    pub reason: String,
}

/// A suite a recipe requires for one tier: `[[tests.upstream]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequiredSuite {
    pub package: String,
    pub suite: String,
    /// Tag → reason: exactly what this tier's build may leave out.
    pub skip_tags: BTreeMap<String, String>,
}

/// A record found in a closure.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundRecord {
    pub path: StorePath,
    pub record: TestRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamTestError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an {SCHEMA} record: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "package `{package}` has no record of upstream suite `{suite}` in the closure \
         (no {RECORD_FILE} of `{package}` names it; recorded: {recorded})"
    )]
    Missing {
        package: String,
        suite: String,
        recorded: String,
    },
    #[error("{path}: upstream suite `{suite}` of `{package}` ran in mode `{found}`, the build asked for `{wanted}`")]
    Mode {
        path: StorePath,
        package: String,
        suite: String,
        found: UpstreamTestMode,
        wanted: UpstreamTestMode,
    },
    #[error("{path}: upstream suite `{suite}` of `{package}` failed {failed} test(s): {tests}")]
    Failed {
        path: StorePath,
        package: String,
        suite: String,
        failed: u64,
        tests: String,
    },
    #[error("{path}: upstream suite `{suite}` of `{package}` passed no test")]
    NothingPassed {
        path: StorePath,
        package: String,
        suite: String,
    },
    #[error(
        "{path}: upstream suite `{suite}` of `{package}` left out tags [{recorded}], \
         the recipe declares [{declared}] for this tier (tests.upstream.skip)"
    )]
    Skips {
        path: StorePath,
        package: String,
        suite: String,
        recorded: String,
        declared: String,
    },
}

/// Every record in `closure`, in store-path order.
pub fn read_records(closure: &Closure) -> Result<Vec<FoundRecord>, UpstreamTestError> {
    let mut out = Vec::new();
    for path in closure.paths.keys() {
        let file = path.as_path().join(RECORD_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(UpstreamTestError::Read { path: file, source }),
        };
        let record = parse_record(&text).map_err(|message| UpstreamTestError::Parse {
            path: file.clone(),
            message,
        })?;
        out.push(FoundRecord {
            path: path.clone(),
            record,
        });
    }
    Ok(out)
}

/// Parses one record and checks its schema id and totals.
pub fn parse_record(text: &str) -> Result<TestRecord, String> {
    let r: TestRecord = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if r.schema != SCHEMA {
        return Err(format!("schema `{}`, expected `{SCHEMA}`", r.schema));
    }
    let sum = |f: fn(&SuiteRecord) -> u64| r.suites.iter().map(f).sum::<u64>();
    if (r.passed, r.failed, r.skipped) != (sum(|s| s.passed), sum(|s| s.failed), sum(|s| s.skipped))
    {
        return Err("the totals differ from the sum of the suites".into());
    }
    Ok(r)
}

/// Fails unless every required suite ran in `mode`, passed something,
/// failed nothing, and left out exactly the tags declared for the tier.
pub fn check(
    records: &[FoundRecord],
    required: &[RequiredSuite],
    mode: UpstreamTestMode,
) -> Result<(), UpstreamTestError> {
    for req in required {
        let found = records.iter().find_map(|f| {
            (f.record.package == req.package)
                .then(|| {
                    f.record
                        .suites
                        .iter()
                        .find(|s| s.suite == req.suite)
                        .map(|s| (f, s))
                })
                .flatten()
        });
        let Some((f, s)) = found else {
            let recorded: Vec<String> = records
                .iter()
                .flat_map(|f| {
                    f.record
                        .suites
                        .iter()
                        .map(move |s| format!("{}: {}", f.record.package, s.suite))
                })
                .collect();
            return Err(UpstreamTestError::Missing {
                package: req.package.clone(),
                suite: req.suite.clone(),
                recorded: if recorded.is_empty() {
                    "none".into()
                } else {
                    recorded.join(", ")
                },
            });
        };
        let (path, package, suite) = (f.path.clone(), req.package.clone(), req.suite.clone());
        if f.record.mode != mode {
            return Err(UpstreamTestError::Mode {
                path,
                package,
                suite,
                found: f.record.mode,
                wanted: mode,
            });
        }
        if s.failed > 0 {
            return Err(UpstreamTestError::Failed {
                path,
                package,
                suite,
                failed: s.failed,
                tests: s.failed_tests.join("; "),
            });
        }
        if s.passed == 0 {
            return Err(UpstreamTestError::NothingPassed {
                path,
                package,
                suite,
            });
        }
        let recorded: Vec<&str> = s.skipped_tags.iter().map(|t| t.tag.as_str()).collect();
        let declared: Vec<&str> = req.skip_tags.keys().map(String::as_str).collect();
        let mut sorted = recorded.clone();
        sorted.sort_unstable();
        if sorted != declared {
            return Err(UpstreamTestError::Skips {
                path,
                package,
                suite,
                recorded: recorded.join(", "),
                declared: declared.join(", "),
            });
        }
    }
    Ok(())
}

/// One line per suite: `package version: suite (scope): P passed, F failed, S skipped`.
pub fn summary(records: &[FoundRecord]) -> Vec<String> {
    let mut lines = Vec::new();
    for f in records {
        for s in &f.record.suites {
            let scope = if s.scope == "full" {
                "full".to_string()
            } else {
                format!("{} subset", f.record.mode)
            };
            let mut line = format!(
                "{} {}: {} ({scope}): {} passed, {} failed, {} skipped",
                f.record.package, f.record.version, s.suite, s.passed, s.failed, s.skipped
            );
            for t in &s.skipped_tags {
                line.push_str(&format!("; left out `{}`: {}", t.tag, t.reason));
            }
            lines.push(line);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(package: &str, suite: &str, passed: u64, failed: u64, tags: &[&str]) -> FoundRecord {
        let s = SuiteRecord {
            suite: suite.into(),
            command: "make test".into(),
            scope: "full".into(),
            passed,
            failed,
            skipped: 0,
            failed_tests: (0..failed).map(|i| format!("t{i}")).collect(),
            skipped_tags: tags
                .iter()
                .map(|t| SkippedTag {
                    tag: t.to_string(),
                    reason: "compiled out".into(),
                })
                .collect(),
            seconds: 1,
        };
        FoundRecord {
            path: StorePath::parse(&format!("/nix/store/{}-{package}-1", "a".repeat(32))).unwrap(),
            record: TestRecord {
                schema: SCHEMA.into(),
                package: package.into(),
                version: "1".into(),
                mode: UpstreamTestMode::Ci,
                passed,
                failed,
                skipped: 0,
                suites: vec![s],
            },
        }
    }

    fn req(package: &str, suite: &str, tags: &[&str]) -> RequiredSuite {
        RequiredSuite {
            package: package.into(),
            suite: suite.into(),
            skip_tags: tags
                .iter()
                .map(|t| (t.to_string(), "why".to_string()))
                .collect(),
        }
    }

    #[test]
    fn passes_when_every_required_suite_passed() {
        let recs = [
            record("zlib", "make test", 3, 0, &[]),
            record("redis", "runtest", 900, 0, &["tls"]),
        ];
        check(
            &recs,
            &[
                req("zlib", "make test", &[]),
                req("redis", "runtest", &["tls"]),
            ],
            UpstreamTestMode::Ci,
        )
        .unwrap();
    }

    #[test]
    fn names_the_failing_suite_and_tests() {
        let recs = [record("zlib", "make test", 2, 1, &[])];
        let e = check(
            &recs,
            &[req("zlib", "make test", &[])],
            UpstreamTestMode::Ci,
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("`make test` of `zlib` failed 1 test(s): t0"),
            "{m}"
        );
    }

    #[test]
    fn missing_nothing_passed_mode_and_undeclared_skips_fail() {
        let recs = [
            record("redis", "runtest", 900, 0, &["tls"]),
            record("pcre2", "make check", 0, 0, &[]),
        ];
        let m = check(
            &recs,
            &[req("zlib", "make test", &[])],
            UpstreamTestMode::Ci,
        )
        .unwrap_err()
        .to_string();
        assert!(
            m.contains("no record of upstream suite `make test`") && m.contains("redis: runtest"),
            "{m}"
        );
        let m = check(
            &recs,
            &[req("pcre2", "make check", &[])],
            UpstreamTestMode::Ci,
        )
        .unwrap_err()
        .to_string();
        assert!(m.contains("passed no test"), "{m}");
        let m = check(&recs, &[req("redis", "runtest", &[])], UpstreamTestMode::Ci)
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("left out tags [tls]") && m.contains("declares []"),
            "{m}"
        );
        let m = check(
            &recs,
            &[req("redis", "runtest", &["tls"])],
            UpstreamTestMode::Full,
        )
        .unwrap_err()
        .to_string();
        assert!(
            m.contains("ran in mode `ci`, the build asked for `full`"),
            "{m}"
        );
    }

    #[test]
    fn parse_rejects_other_schemas_and_wrong_totals() {
        let r = record("zlib", "make test", 3, 0, &[]).record;
        let ok = serde_json::to_string(&r).unwrap();
        assert_eq!(parse_record(&ok).unwrap(), r);
        let bad = ok.replace(SCHEMA, "other/v1");
        assert!(parse_record(&bad).unwrap_err().contains("other/v1"));
        let mut wrong = r.clone();
        wrong.passed = 4;
        assert!(parse_record(&serde_json::to_string(&wrong).unwrap())
            .unwrap_err()
            .contains("totals"));
    }
}
