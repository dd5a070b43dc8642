#!/usr/bin/env bash
# Prints the Debian mirror this machine's apt is configured with, so scripts
# never name a host of their own (a user's mirror is respected).
#
#   scripts/debian-mirror.sh main       the archive (e.g. …/debian)
#   scripts/debian-mirror.sh security   the security archive (…/debian-security)
#
# Reads deb822 `.sources` files first (their `URIs:` line, matched by the
# `Suites:` line of the same stanza), then one-line `sources.list` entries.
set -euo pipefail
kind=${1:-main}

candidates() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # one "URI<TAB>suites" line per stanza
    awk 'BEGIN{RS=""; FS="\n"} {u=""; s=""; t=""
         for (i=1;i<=NF;i++) {
           if ($i ~ /^URIs:/)   { sub(/^URIs:[ \t]*/, "", $i); split($i, a, /[ \t]+/); u=a[1] }
           if ($i ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", $i); s=$i }
           if ($i ~ /^Types:/)  { t=$i } }
         if (u != "" && t ~ /deb/) print u "\t" s }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" || $1 == "deb-src" { i=2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
         print $i "\t" $(i+1) }' "$f"
  done
}

pick=$(candidates | awk -F'\t' -v kind="$kind" '
  kind == "security" && $2 ~ /-security/ { print $1; exit }
  kind == "main" && $2 !~ /-security/ { print $1; exit }')
if [ -z "$pick" ]; then
  echo "debian-mirror: no $kind Debian mirror found in /etc/apt/sources.list{,.d}" >&2
  exit 1
fi
echo "${pick%/}"
