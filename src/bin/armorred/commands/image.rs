//! `inspect` and `fsck`: reading an image layout.

use anyhow::Result;

use crate::cli::{FsckArgs, InspectArgs};
use armorred::inspect;
use armorred::oci::layout::Layout;

use super::*;

pub(super) fn inspect_cmd(a: &InspectArgs) -> Result<CommandOutput> {
    let r = inspect::inspect(&a.layout, a.reference.as_deref())?;
    Ok(CommandOutput::ok(if a.json {
        json(&r)
    } else {
        inspect::render(&r)
    }))
}

pub(super) fn fsck(a: &FsckArgs) -> Result<CommandOutput> {
    let layout = Layout::open(&a.layout)?;
    let report = layout.fsck()?;
    let failed = !report.is_ok();
    let stdout = if a.json {
        json(&report)
    } else {
        let mut s = format!(
            "{}: {} blobs checked, {} unreferenced, {} problem(s)\n",
            a.layout.display(),
            report.blobs_checked,
            report.unreferenced,
            report.problems.len()
        );
        for p in &report.problems {
            s.push_str(&format!("  {p}\n"));
        }
        s
    };
    Ok(CommandOutput { stdout, failed })
}
