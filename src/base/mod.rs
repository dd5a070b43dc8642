//! Low-level jobs with exactly one owner each, below every stage: atomic
//! file writes, canonical JSON, timestamps and the cache directory. A second
//! copy of any of these drifts; everything above calls these.

pub mod dirs;
pub mod fs;
pub mod json;
pub mod time;
