#!/usr/bin/env bash
# The main job end to end on a fresh Debian 12 machine (root): installs what is
# missing, fetches the pinned upstream sources, builds armorred, then builds
# nginx with the offline package set: the locked tier, then both tiers.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-system.sh
bash scripts/fetch-sources.sh
cargo build --release --locked
./target/release/armorred build nginx --tier locked
./target/release/armorred build nginx --tier all
./target/release/armorred inspect out/nginx-locked
