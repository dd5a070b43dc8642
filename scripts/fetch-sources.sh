#!/usr/bin/env bash
# Downloads the pinned upstream release tarballs for armorred's offline Nix
# package set (nix/offline) into a local source cache, from Debian's source
# archive (`apt-get source --download-only`; the deb-src entry is set up by
# scripts/setup-system.sh).
#
#   scripts/fetch-sources.sh [DIR]
#
# DIR defaults to ${ARMORRED_SOURCES:-${XDG_CACHE_HOME:-$HOME/.cache}/armorred/sources}.
# Only the upstream `*.orig.tar.*` tarballs are kept. The pins (file name,
# sha256, version) are read from nix/offline/sources.json, the single source of
# truth also used by the Nix expressions. Idempotent: a tarball that is already
# present and matches its pin is skipped; any mismatch is a hard error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pins="$here/../nix/offline/sources.json"
dir="${1:-${ARMORRED_SOURCES:-${XDG_CACHE_HOME:-$HOME/.cache}/armorred/sources}}"

die() { echo "fetch-sources: error: $*" >&2; exit 1; }
log() { echo "fetch-sources: $*" >&2; }

[ -f "$pins" ] || die "pin file not found: $pins"

# name <TAB> file <TAB> sha256 <TAB> debian source package, one line per source
read_pins() {
  if command -v jq >/dev/null 2>&1; then
    jq -r 'to_entries[] | [.key, .value.file, .value.sha256, (.value.debianSource // .key)] | @tsv' "$pins"
  else
    python3 - "$pins" <<'PY'
import json, sys
for k, v in json.load(open(sys.argv[1])).items():
    print("\t".join([k, v["file"], v["sha256"], v.get("debianSource", k)]))
PY
  fi
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
log "source cache: $dir"

failed=0
while IFS=$'\t' read -r name file sha src; do
  [ -n "$name" ] || continue
  target="$dir/$file"
  if [ -f "$target" ]; then
    got="$(sha_of "$target")"
    if [ "$got" = "$sha" ]; then
      log "$name: $file present and verified, skipping"
      continue
    fi
    echo "fetch-sources: error: sha256 mismatch for $target" >&2
    echo "  expected $sha (nix/offline/sources.json, \"$name\")" >&2
    echo "  got      $got" >&2
    echo "  delete the file to download it again, or fix the pin" >&2
    failed=1
    continue
  fi

  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; cannot download $file"
  log "$name: downloading Debian source package '$src'"
  tmp="$(mktemp -d "$dir/.fetch-$name.XXXXXX")"
  # apt drops privileges to _apt for downloads; let it write into the temp dir.
  chmod 0777 "$tmp"
  if ! (cd "$tmp" && apt-get source --download-only -q "$src" >"$tmp/.apt.log" 2>&1); then
    cat "$tmp/.apt.log" >&2
    rm -rf "$tmp"
    die "apt-get source $src failed (is a deb-src entry configured? run scripts/setup-system.sh)"
  fi
  if [ ! -f "$tmp/$file" ]; then
    offered="$(cd "$tmp" && ls -- *.orig.tar.* 2>/dev/null | grep -v '\.asc$' | tr '\n' ' ')"
    rm -rf "$tmp"
    die "$name: Debian's source package '$src' no longer provides the pinned $file (it offers: ${offered:-nothing}); update nix/offline/sources.json"
  fi
  got="$(sha_of "$tmp/$file")"
  if [ "$got" != "$sha" ]; then
    rm -rf "$tmp"
    echo "fetch-sources: error: sha256 mismatch for downloaded $file" >&2
    echo "  expected $sha (nix/offline/sources.json, \"$name\")" >&2
    echo "  got      $got" >&2
    failed=1
    continue
  fi
  # keep only the upstream tarball (drop .dsc, .debian.tar.*, .diff.gz, .asc)
  chmod 0644 "$tmp/$file"
  mv -f "$tmp/$file" "$target"
  rm -rf "$tmp"
  log "$name: $file verified ($sha)"
done < <(read_pins)

[ "$failed" = 0 ] || die "one or more tarballs did not match their sha256 pins"
log "all sources present in $dir"
