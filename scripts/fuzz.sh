#!/usr/bin/env bash
# Fuzzes the recipe parser, the OCI layout reader (what `inspect`, `analyze`
# and `fsck` read) and the ELF analyzer for SECONDS each (default 60). Fails
# on a crash, a timeout (an input taking over 10 s) or running out of memory;
# libFuzzer leaves the input in fuzz/artifacts/<target>/ and prints it.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: recipe layout elf
#   scripts/fuzz.sh 60                         what CI runs
#
# Stable Rust is enough: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# nightly-only flags (-Zsanitizer=address, sancov passes). The checked-in
# seeds in fuzz/corpus/<target>/ are read only; what a run discovers goes to
# a scratch directory, so the repository's corpora stay small. To keep a
# run's finds, merge them: `cargo fuzz cmin` or libFuzzer's -merge=1.
# Reproduce a crash: `RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET ARTIFACT`
# (from fuzz/), then add the input as a regression test beside the code.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(recipe layout elf)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd fuzz
cargo fuzz build

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    dict=()
    if [ -f "dict/$t.dict" ]; then
        dict=("-dict=dict/$t.dict")
    fi
    echo "fuzz: $t for ${seconds}s"
    cargo fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 "${dict[@]}"
done
echo "fuzz: ${targets[*]}: ${seconds}s each, no crash"
