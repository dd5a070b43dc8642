#!/usr/bin/env python3
"""Which of a Debian source package's patches armorred applies: the one place
the selection rule is written down. Used by the offline set's builder (at build
time, on the pinned `*.debian.tar.*`) and by scripts/sources-update.py (to say
which CVEs a pin move newly fixes), so the two cannot disagree.

The rule (RULE below): a patch listed in `debian/patches/series` is applied
when it cites a security fix, that is when its file name or its DEP-3 header
names a CVE ID (CVE-YYYY-NNNN…) or a Debian/LTS security advisory (DSA-…,
DLA-…); plus the patches the pin names as prerequisites (a security patch
whose context needs an earlier Debian patch), each with its reason. Everything
else Debian carries (packaging, behaviour changes, Debian's own features)
stays out, so a build is upstream plus security fixes, not Debian's flavour.
Patches are applied in series order, `patch -p1` unless the series line says
otherwise; one that does not apply fails the build, naming it.

The Debian side of a source package is a `*.debian.tar.*` (format 3.0) or a
`*.diff.gz` (format 1.0, whose new files under debian/ are read; its direct
edits of upstream files are Debian changes, not security patches, and stay
out). Only `debian/patches/` is ever extracted, member by member, refusing any
name that is absolute or climbs with `..`.

Standard library only: the builder runs it with the host's python3.

  debian_patches.py prepare ARTIFACT OUTDIR [--prereq NAME=REASON]... [--meta JSON]
      writes OUTDIR/patches/<name> (the selected patches), OUTDIR/series
      (name TAB options, in order) and OUTDIR/selection.json
"""

import argparse
import gzip
import hashlib
import json
import os
import re
import sys
import tarfile

RULE = (
    "a patch in debian/patches/series whose file name or DEP-3 header names a CVE ID "
    "or a DSA/DLA security advisory, plus prerequisites the pin names with a reason; "
    "applied in series order"
)

CVE_RE = re.compile(r"CVE[-_](\d{4})[-_](\d{4,})", re.IGNORECASE)
ADVISORY_RE = re.compile(r"\b(DSA|DLA)-\d+(-\d+)?\b")
# Where a DEP-3 header ends and the diff begins.
DIFF_START_RE = re.compile(r"^(---|\+\+\+|diff |Index: |=====)")


def cves_in(text):
    """CVE IDs in `text`, normalised (CVE-YYYY-NNNN), sorted, unique."""
    return sorted({f"CVE-{y}-{n}" for y, n in CVE_RE.findall(text)})


def dep3_header(text):
    """The lines before the diff starts (DEP-3 header and free-form preamble)."""
    out = []
    for line in text.splitlines():
        if DIFF_START_RE.match(line):
            break
        out.append(line)
    return "\n".join(out)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def read_series(patches_dir):
    """(name, patch options) for each series line, in order."""
    series = os.path.join(patches_dir, "series")
    entries = []
    if not os.path.exists(series):
        return entries
    with open(series, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            entries.append((parts[0], parts[1:]))
    return entries


def classify(name, text):
    """(security, selectedBy, cves) for one patch file."""
    name_cves = cves_in(name)
    header = dep3_header(text)
    header_cves = cves_in(header)
    cves = sorted(set(name_cves) | set(header_cves))
    if name_cves:
        return True, "name", cves
    if header_cves or ADVISORY_RE.search(header):
        return True, "header", cves
    return False, None, cves


def select(debian_dir, prerequisites=None):
    """The patches to apply, in series order, as dicts (see the JSON schema)."""
    prerequisites = dict(prerequisites or {})
    patches_dir = os.path.join(debian_dir, "patches")
    chosen = []
    seen = set()
    for name, opts in read_series(patches_dir):
        path = os.path.join(patches_dir, name)
        if not os.path.isfile(path):
            raise SystemExit(f"debian_patches: series names {name}, which is not in {patches_dir}")
        data = _read(path)
        text = data.decode("utf-8", errors="replace")
        security, selected_by, cves = classify(name, text)
        if not security and name in prerequisites:
            selected_by = f"prerequisite: {prerequisites[name]}"
        elif not security:
            continue
        seen.add(name)
        chosen.append(
            {
                "name": name,
                "options": opts,
                "sha256": hashlib.sha256(data).hexdigest(),
                "cves": cves if security else [],
                "security": security,
                "selectedBy": selected_by,
            }
        )
    missing = sorted(set(prerequisites) - seen)
    if missing:
        raise SystemExit(
            "debian_patches: prerequisite(s) not in debian/patches/series: " + ", ".join(missing)
        )
    return chosen


def _safe_rel(name):
    """`debian/patches/...` relative name, or None for anything else or hostile."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts or len(parts) < 3:
        return None
    if parts[0] != "debian" or parts[1] != "patches":
        return None
    return "/".join(parts)


def _write(dest_root, rel, data):
    dest = os.path.join(dest_root, rel)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "wb") as f:
        f.write(data)


def extract(artifact, dest_root):
    """Extracts debian/patches/ of a `.debian.tar.*` or `.diff.gz` into dest_root."""
    base = os.path.basename(artifact)
    if ".debian.tar." in base:
        with tarfile.open(artifact, "r:*") as tf:
            for m in tf:
                rel = _safe_rel(m.name)
                if rel is None or not m.isfile():
                    continue
                with tf.extractfile(m) as src:
                    _write(dest_root, rel, src.read())
    elif base.endswith(".diff.gz"):
        with gzip.open(artifact, "rb") as f:
            lines = f.read().decode("utf-8", errors="surrogateescape").splitlines(keepends=True)
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("+++ ") and i + 1 < len(lines) and lines[i + 1].startswith("@@ -0,0 "):
                target = line[4:].split("\t", 1)[0].strip()
                rel = _safe_rel(target.split("/", 1)[1] if "/" in target else target)
                i += 1
                body = []
                # one hunk creating the file: every line is an addition
                while i < len(lines) and not lines[i].startswith(("--- ", "diff ")):
                    if lines[i].startswith("+"):
                        body.append(lines[i][1:])
                    elif lines[i].startswith("\\"):
                        if body and body[-1].endswith("\n"):
                            body[-1] = body[-1][:-1]
                    i += 1
                if rel is not None:
                    _write(dest_root, rel, "".join(body).encode("utf-8", errors="surrogateescape"))
                continue
            i += 1
    else:
        raise SystemExit(f"debian_patches: {artifact}: neither a .debian.tar.* nor a .diff.gz")
    return os.path.join(dest_root, "debian")


def prepare(artifact, outdir, prerequisites=None, meta=None):
    """Extracts, selects and copies the selected patches into outdir; the
    record (`selection.json`) is `meta` plus the rule and the patches."""
    scratch = os.path.join(outdir, "debian-extracted")
    debian_dir = extract(artifact, scratch)
    chosen = select(debian_dir, prerequisites)
    for p in chosen:
        data = _read(os.path.join(debian_dir, "patches", p["name"]))
        _write(outdir, os.path.join("patches", p["name"]), data)
    with open(os.path.join(outdir, "series"), "w", encoding="utf-8") as f:
        for p in chosen:
            f.write("\t".join([p["name"]] + p["options"]) + "\n")
    with open(os.path.join(outdir, "selection.json"), "w", encoding="utf-8") as f:
        record = dict(meta or {})
        record.update({"rule": RULE, "patches": chosen})
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    return chosen


def fixed_cves(chosen):
    return sorted({c for p in chosen for c in p["cves"]})


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("prepare")
    s.add_argument("artifact")
    s.add_argument("outdir")
    s.add_argument("--prereq", action="append", default=[], metavar="NAME=REASON")
    s.add_argument("--prereqs-json", default="{}", help="JSON object NAME -> REASON")
    s.add_argument("--meta", default="{}", help="JSON object merged into selection.json")
    args = ap.parse_args(argv)

    prereqs = dict(json.loads(args.prereqs_json))
    for p in args.prereq:
        name, sep, reason = p.partition("=")
        if not sep or not reason.strip():
            raise SystemExit(f"debian_patches: --prereq needs NAME=REASON, got {p!r}")
        prereqs[name] = reason.strip()
    chosen = prepare(args.artifact, args.outdir, prereqs, json.loads(args.meta))
    print(f"debian_patches: {len(chosen)} patch(es) selected, fixing {len(fixed_cves(chosen))} CVE(s)")


if __name__ == "__main__":
    main(sys.argv[1:])
