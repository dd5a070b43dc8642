//! The two security tiers every image comes in.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `hardened`: a drop-in replacement for upstream. `locked`: the same
/// hardening with rarely-used features compiled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Hardened,
    Locked,
}

impl Tier {
    pub const ALL: [Tier; 2] = [Tier::Hardened, Tier::Locked];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hardened => "hardened",
            Tier::Locked => "locked",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hardened" => Ok(Tier::Hardened),
            "locked" => Ok(Tier::Locked),
            other => Err(format!(
                "unknown tier `{other}`: expected `hardened` or `locked`"
            )),
        }
    }
}

/// What `--tier` selects: one tier or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierSelection {
    One(Tier),
    All,
}

impl TierSelection {
    pub fn tiers(self) -> Vec<Tier> {
        match self {
            TierSelection::One(t) => vec![t],
            TierSelection::All => Tier::ALL.to_vec(),
        }
    }
}

impl FromStr for TierSelection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(TierSelection::All),
            t => t
                .parse()
                .map(TierSelection::One)
                .map_err(|_| format!("unknown tier `{t}`: expected `hardened`, `locked` or `all`")),
        }
    }
}

/// `<out>/<image>-<tier>`: one OCI layout per image and tier, the one place
/// that names where a build writes and where readers look for it.
pub fn layout_dir(out: &Path, image: &str, tier: Tier) -> PathBuf {
    out.join(format!("{image}-{tier}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_selection() {
        assert_eq!("all".parse::<TierSelection>().unwrap().tiers().len(), 2);
        assert_eq!(
            "locked".parse::<TierSelection>().unwrap(),
            TierSelection::One(Tier::Locked)
        );
        assert!("strict"
            .parse::<TierSelection>()
            .unwrap_err()
            .contains("strict"));
    }
}
