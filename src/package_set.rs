//! Which Nix package set builds an image: the offline set in `nix/offline`
//! or the overlay over nixpkgs. A value type low in the pipeline, so that the
//! platform selection and the plan can both name it.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageSet {
    /// `nix/offline`: pinned upstream tarballs, host clang, no network.
    Offline,
    /// `nix/` overlay over the nixpkgs pinned in `flake.lock` (Nix ≥ 2.18).
    Nixpkgs,
}

impl PackageSet {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageSet::Offline => "offline",
            PackageSet::Nixpkgs => "nixpkgs",
        }
    }
}

impl fmt::Display for PackageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PackageSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "offline" => Ok(PackageSet::Offline),
            "nixpkgs" => Ok(PackageSet::Nixpkgs),
            o => Err(format!(
                "unknown package set `{o}`: expected `offline` or `nixpkgs`"
            )),
        }
    }
}
