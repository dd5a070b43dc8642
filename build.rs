//! Records the git revision for `armorred --version`, so a binary names the
//! commit it was built from, and provenance names it in full. Outside a git
//! checkout the revision is "unknown".
use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    // The full commit goes into provenance; `--version` shows the short form.
    println!("cargo:rustc-env=ARMORRED_GIT_COMMIT={rev}");
    let short: String = rev.chars().take(12).collect();
    println!("cargo:rustc-env=ARMORRED_GIT_REVISION={short}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    facts_version();
    println!("cargo:rerun-if-changed=.git/refs");
}

/// The layer cache keeps per-layer facts (`LayerFacts` in
/// `src/oci/facts.rs`); a hash of the sources that derive and encode
/// them names their format, so an armorred whose facts changed never reuses
/// facts an older one made. Only those sources: the verdicts made from the
/// facts later (`analyze_image`, lint's checks and wording) are not cached,
/// and hashing them would throw the cache away on every edit to a check.
fn facts_version() {
    const SOURCES: &[&str] = &[
        // LayerFacts, its entries and their encoding; what each entry keeps.
        "src/oci/facts.rs",
        // The walker: names, whiteouts, kinds and modes, what is refused.
        "src/oci/decode.rs",
        // Secret-pattern hits, kept per layer.
        "src/oci/secrets.rs",
        // FileKind and ElfFacts, and the ELF inspection they are made by.
        "src/analyze/facts.rs",
        "src/analyze/elf.rs",
        "src/analyze/fortify.rs",
        // goblin and regex versions shape the facts too.
        "Cargo.lock",
    ];
    // FNV-1a: no dependency, and collisions need not be resisted here.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for path in SOURCES {
        println!("cargo:rerun-if-changed={path}");
        let bytes = std::fs::read(path).unwrap_or_default();
        for b in path.bytes().chain(bytes) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=ARMORRED_FACTS_VERSION={h:016x}");
}
