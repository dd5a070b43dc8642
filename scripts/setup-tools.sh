#!/usr/bin/env bash
# Installs the supply-chain clients the tests check armorred's output with,
# where Debian 12 has none: cosign and oras, Go binaries from Debian 13's pool
# that need only libc >= 2.34, unpacked with `dpkg -x` (no dependency on the
# rest of trixie). Each .deb is pinned by sha256; a changed file is an error.
# The mirror is this machine's own (scripts/debian-mirror.sh). Idempotent.
#
# Installs into /opt/armorred-tools/<name> and links /usr/local/bin/<name>.
set -euo pipefail
cd "$(dirname "$0")/.."

# name  version  pool file (under <mirror>/)  sha256 of the .deb
pins=(
  "cosign 2.5.0 pool/main/c/cosign/cosign_2.5.0-2+b5_amd64.deb 3b6eadd27f3c4c00bfa7eab5c2397a6a15a763630c7a1d40d06ff60d24799eef"
  "oras 1.2.0 pool/main/o/oras/oras_1.2.0-1+b9_amd64.deb 5f138419f0e4bc128ee4717b06190dc5770cf120ab7e3a991e5b3e9158f3189e"
)

mirror=$(bash scripts/debian-mirror.sh main)
root=/opt/armorred-tools
mkdir -p "$root" /usr/local/bin
for line in "${pins[@]}"; do
  read -r name version file sha <<<"$line"
  dest="$root/$name-$version"
  if [ ! -x "$dest/usr/bin/$name" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "setup-tools: fetching $name $version" >&2
    curl -fsS --retry 3 -o "$tmp/pkg.deb" "$mirror/$file" ||
      { echo "setup-tools: error: cannot fetch $mirror/$file" >&2; exit 1; }
    got=$(sha256sum "$tmp/pkg.deb" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
      echo "setup-tools: error: sha256 mismatch for $file: expected $sha, got $got" >&2
      exit 1
    fi
    rm -rf "$dest.tmp"
    dpkg -x "$tmp/pkg.deb" "$dest.tmp"
    mv "$dest.tmp" "$dest"
    rm -rf "$tmp"
    trap - EXIT
  fi
  ln -sfn "$dest/usr/bin/$name" "/usr/local/bin/$name"
done
cosign version >/dev/null 2>&1 || { echo "setup-tools: error: cosign does not run" >&2; exit 1; }
oras version >/dev/null 2>&1 || { echo "setup-tools: error: oras does not run" >&2; exit 1; }
echo "setup-tools: ok (cosign, oras)" >&2
