//! Where armorred keeps its per-user cache: `$XDG_CACHE_HOME/armorred`, else
//! `~/.cache/armorred` (the XDG base-directory rule), decided here only.

use std::path::PathBuf;

/// `None` when neither `XDG_CACHE_HOME` nor `HOME` is set.
pub fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("armorred"))
}
