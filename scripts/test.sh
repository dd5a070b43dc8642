#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (root): installs what
# is missing, fetches the pinned sources, checks formatting and lints, then
# runs unit and integration tests (real Nix, podman, skopeo, umoci, registry).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-system.sh
bash scripts/setup-tools.sh
bash scripts/fetch-sources.sh
ARMORRED_PYTHON=$(bash scripts/setup-python.sh)
export ARMORRED_PYTHON
# The independent cosign checker must run, not skip, in CI.
export ARMORRED_REQUIRE_COSIGN_CHECK=1
# Snapshot tests compare and never write: a missing or changed .snap fails.
export INSTA_UPDATE=no

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Integration tests share the Nix store and podman; two threads suit 2 cores.
cargo test --locked --all-targets -- --test-threads="${ARMORRED_TEST_THREADS:-2}"
# Bounded fuzzing of the recipe parser, the layout reader and the ELF analyzer.
bash scripts/fuzz.sh "${ARMORRED_FUZZ_SECONDS:-60}"
