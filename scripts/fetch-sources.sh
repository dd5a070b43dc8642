#!/usr/bin/env bash
# Downloads the pinned sources of armorred's offline Nix package set
# (nix/offline) into a local source cache: for each source, Debian's upstream
# tarball (`*.orig.tar.*`) and Debian's own `*.debian.tar.*` (or format 1.0
# `*.diff.gz`), whose security patches the build applies.
#
#   scripts/fetch-sources.sh [DIR]
#
# DIR defaults to ${ARMORRED_SOURCES:-${XDG_CACHE_HOME:-$HOME/.cache}/armorred/sources}.
# The pins (file names, sha256, pool directory) are read from
# nix/offline/sources.json, the single source of truth also used by the Nix
# expressions; scripts/sources-update.py moves them. Files come straight from
# the pool of this machine's own Debian mirror (scripts/debian-mirror.sh), not
# through `apt-get source`: a pinned revision may no longer be in the index
# (the pool keeps it), and a pool path is predictable. Idempotent: a file that
# is present and matches its pin is skipped; any mismatch is a hard error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pins="$here/../nix/offline/sources.json"
dir="${1:-${ARMORRED_SOURCES:-${XDG_CACHE_HOME:-$HOME/.cache}/armorred/sources}}"

die() { echo "fetch-sources: error: $*" >&2; exit 1; }
log() { echo "fetch-sources: $*" >&2; }

[ -f "$pins" ] || die "pin file not found: $pins"
mirror_main=$(bash "$here/debian-mirror.sh" main)
mirror_security=$(bash "$here/debian-mirror.sh" security 2>/dev/null || true)

# name <TAB> file <TAB> sha256 <TAB> archive <TAB> pool dir, two lines per source
read_pins() {
  python3 - "$pins" <<'PY'
import json, sys
for k, v in sorted(json.load(open(sys.argv[1])).items()):
    for f in (v, v["debian"]):
        print("\t".join([k, f["file"], f["sha256"], v["archive"], v["pool"]]))
PY
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
log "source cache: $dir"

failed=0
while IFS=$'\t' read -r name file sha archive pool; do
  [ -n "$name" ] || continue
  target="$dir/$file"
  if [ -f "$target" ]; then
    got="$(sha_of "$target")"
    if [ "$got" = "$sha" ]; then
      log "$name: $file present and verified"
      continue
    fi
    echo "fetch-sources: error: sha256 mismatch for $target" >&2
    echo "  expected $sha (nix/offline/sources.json, \"$name\")" >&2
    echo "  got      $got" >&2
    echo "  delete the file to download it again, or fix the pin" >&2
    failed=1
    continue
  fi
  # The pinned archive first; a security revision moves to the main pool at
  # the next point release, so the other pool is tried too.
  alt=${pool/pool\/updates\/main/pool\/main}
  [ "$alt" != "$pool" ] || alt=${pool/pool\/main/pool\/updates\/main}
  if [ "$archive" = security ]; then
    urls=("$mirror_security/$pool/$file" "$mirror_main/$alt/$file")
  else
    urls=("$mirror_main/$pool/$file" "$mirror_security/$alt/$file")
  fi
  tmp="$(mktemp "$dir/.fetch-$name.XXXXXX")"
  ok=0
  for url in "${urls[@]}"; do
    case "$url" in /*) continue ;; esac # no security mirror configured
    log "$name: downloading $url"
    if curl -fsS --retry 3 -o "$tmp" "$url"; then ok=1; break; fi
  done
  if [ "$ok" = 0 ]; then
    rm -f "$tmp"
    die "$name: $file is not served at ${urls[*]}; run scripts/sources-update.py to move the pin"
  fi
  got="$(sha_of "$tmp")"
  if [ "$got" != "$sha" ]; then
    rm -f "$tmp"
    echo "fetch-sources: error: sha256 mismatch for downloaded $file" >&2
    echo "  expected $sha (nix/offline/sources.json, \"$name\")" >&2
    echo "  got      $got" >&2
    failed=1
    continue
  fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$target"
  log "$name: $file verified ($sha)"
done < <(read_pins)

[ "$failed" = 0 ] || die "one or more source files did not match their sha256 pins"
log "all sources present in $dir"
