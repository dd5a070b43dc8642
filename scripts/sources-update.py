#!/usr/bin/env python3
"""Moves every pin of the offline package set (nix/offline/sources.json) to the
newest revision of its Debian source package that can actually be fetched, in
the suite and its security suite (default trixie, trixie-security), with that
revision's upstream tarball and Debian tarball pinned by sha256.

  scripts/sources-update.py [--check] [--only NAME]... [--index main=FILE]
                            [--index security=FILE] [--mirror URL]
                            [--security-mirror URL] [--pins FILE]

Why "fetchable" and not "newest indexed": a registry's pool can lag its index by
an upload or two (the newest revision answers 404 while older ones, even ones no
longer indexed, are served). Each indexed version is tried newest first, then
the earlier security revisions of it (`+deb13uN` counted down), whose pool
paths are predictable; the first whose files are served wins, and the newer
ones that were not are recorded as `newerUnfetchable` in the pin, in the image
(through the build) and printed here. With an ordinary mirror the newest
indexed revision wins and nothing is recorded.

Trust: the Sources indexes are checked against the suite's InRelease, verified
with gpgv and the Debian archive keyring, so the sha256 of every indexed file
is Debian's. A revision found only in the pool (not indexed any more) has no
signed checksum here: its sha256 is taken from the download and the pin says
`"indexed": false`.

A pin never moves silently: the script prints old -> new versions and the CVE
IDs newly fixed (by nix/offline/debian_patches.py, the same rule the build
applies), and a changed file behind an unchanged version is an error. With
--check nothing is written; the exit status is 1 when a pin would move.
Mirrors default to this machine's apt configuration (scripts/debian-mirror.sh).
"""

import argparse
import hashlib
import io
import json
import lzma
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "nix", "offline"))
import debian_patches  # noqa: E402  (the one selection rule)

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
USER_AGENT = "armorred-sources-update"


class UpdateError(Exception):
    pass


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- versions

def _order(c):
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a, b):
    """dpkg's comparison of an upstream version or revision string."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def split_version(v):
    epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch or 0), upstream, revision


def compare_versions(a, b):
    """<0, 0, >0 as Debian orders versions a and b."""
    ea, ua, ra = split_version(a)
    eb, ub, rb = split_version(b)
    if ea != eb:
        return ea - eb
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def upstream_version(v):
    """The upstream release a Debian version packages (no epoch, revision or repack marks)."""
    _, up, _ = split_version(v)
    if "+really" in up:
        up = up.split("+really", 1)[1]
    return re.sub(r"([+.~]dfsg\d*|[+~]ds\d*)$", "", up)


def no_epoch(v):
    return v.split(":", 1)[1] if ":" in v else v


def earlier_security_revisions(v):
    """`1.26.3-3+deb13u11` -> u10, u9, ..., u1, then the release's `1.26.3-3`.

    A `~debNNuM` revision is a newer upstream backported to the release, so
    its base (without `~deb…`) was never in that release and is not tried."""
    m = re.match(r"^(.*)([+~]deb\d+u)(\d+)$", v)
    if not m:
        return []
    base, mark, n = m.group(1), m.group(2), int(m.group(3))
    earlier = [f"{base}{mark}{k}" for k in range(n - 1, 0, -1)]
    return earlier + ([base] if mark.startswith("+") else [])


# ---------------------------------------------------------------- indexes

def parse_deb822(text):
    paras, cur, key = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                paras.append(cur)
            cur, key = {}, None
        elif line[0] in " \t" and key:
            cur[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, val = line.partition(":")
            cur[key] = val.strip()
    if cur:
        paras.append(cur)
    return paras


def sha256_files(para):
    out = {}
    for line in para.get("Checksums-Sha256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[parts[2]] = {"sha256": parts[0], "size": int(parts[1])}
    return out


def fetch(url):
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()


def exists(url):
    if url.startswith("file://"):
        return os.path.isfile(url[len("file://"):])
    req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return 200 <= r.status < 300
    except urllib.error.HTTPError as e:
        if e.code in (403, 404, 410):
            return False
        raise UpdateError(f"{url}: HTTP {e.code}")
    except urllib.error.URLError as e:
        raise UpdateError(f"{url}: {e.reason}")


def verified_sources(mirror, suite):
    """The suite's Sources index, checked against its gpgv-verified InRelease."""
    inrelease = fetch(f"{mirror}/dists/{suite}/InRelease")
    with tempfile.TemporaryDirectory() as tmp:
        signed = os.path.join(tmp, "InRelease")
        write_bytes(signed, inrelease)
        out = os.path.join(tmp, "Release")
        r = subprocess.run(
            ["gpgv", "--keyring", KEYRING, "--output", out, signed],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise UpdateError(f"{mirror}/dists/{suite}/InRelease: signature check failed: {r.stderr.strip()}")
        release = read_bytes(out).decode("utf-8")
    want = None
    in_sha = False
    for line in release.splitlines():
        if line.startswith("SHA256:"):
            in_sha = True
            continue
        if in_sha and not line.startswith(" "):
            break
        if in_sha:
            h, _, name = line.split()
            if name == "main/source/Sources.xz":
                want = h
    if want is None:
        raise UpdateError(f"{suite}: InRelease lists no main/source/Sources.xz")
    data = fetch(f"{mirror}/dists/{suite}/main/source/Sources.xz")
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise UpdateError(f"{suite}: Sources.xz sha256 {got} does not match InRelease ({want})")
    return lzma.decompress(data).decode("utf-8", errors="replace")


def read_index_file(path):
    data = read_bytes(path)
    if path.endswith(".xz"):
        data = lzma.decompress(data)
    return data.decode("utf-8", errors="replace")


# ---------------------------------------------------------------- candidates

class Candidate:
    def __init__(self, version, archive, suite, directory, files, indexed):
        self.version = version
        self.archive = archive  # "main" | "security"
        self.suite = suite
        self.directory = directory  # pool/... directory
        self.files = files  # name -> {sha256,size} (indexed only)
        self.indexed = indexed


def file_names(source, version, template_files):
    """The orig and debian tarball names for `version`, shaped like the indexed ones."""
    orig = next((f for f in template_files if ".orig.tar." in f and not f.endswith(".asc")), None)
    deb = next((f for f in template_files if ".debian.tar." in f or f.endswith(".diff.gz")), None)
    if orig is None or deb is None:
        raise UpdateError(f"{source} {version}: the index lists no orig tarball with a Debian tarball or diff (native package?)")
    suffix = ".diff.gz" if deb.endswith(".diff.gz") else ".debian.tar." + deb.split(".debian.tar.", 1)[1]
    return orig, f"{source}_{no_epoch(version)}{suffix}"


def candidates(source, indexes):
    """Indexed versions newest first, each followed by its earlier security revisions."""
    found = []
    for archive, suite, paras in indexes:
        for p in paras:
            if p.get("Package") == source and "Version" in p:
                found.append(Candidate(p["Version"], archive, suite, p["Directory"], sha256_files(p), True))
    if not found:
        raise UpdateError(f"{source}: not in the {', '.join(s for _, s, _ in indexes)} Sources indexes")
    found.sort(key=lambda c: _Key(c.version), reverse=True)
    out, seen = [], set()
    for c in found:
        if c.version in seen:
            continue
        seen.add(c.version)
        out.append(c)
    derived = []
    for c in out:
        for v in earlier_security_revisions(c.version):
            if v not in seen:
                seen.add(v)
                derived.append(Candidate(v, c.archive, c.suite, c.directory, c.files, False))
    allc = out + derived
    allc.sort(key=lambda c: _Key(c.version), reverse=True)
    return allc


class _Key:
    def __init__(self, v):
        self.v = v

    def __lt__(self, other):
        return compare_versions(self.v, other.v) < 0


def pool_dirs(source, mirrors):
    prefix = source[:4] if source.startswith("lib") else source[0]
    return [
        ("security", mirrors["security"], f"pool/updates/main/{prefix}/{source}"),
        ("main", mirrors["main"], f"pool/main/{prefix}/{source}"),
    ]


def locate(source, cand, mirrors):
    """(archive, directory, orig, deb) where both files are served, or None."""
    orig, deb = file_names(source, cand.version, cand.files)
    places = pool_dirs(source, mirrors)
    if cand.archive:
        places = [(cand.archive, mirrors[cand.archive], cand.directory)] + places
    for archive, mirror, directory in places:
        if mirror is None:
            continue
        if exists(f"{mirror}/{directory}/{deb}") and exists(f"{mirror}/{directory}/{orig}"):
            return archive, mirror, directory, orig, deb
    return None


def download_checked(url, expect=None):
    data = fetch(url)
    got = hashlib.sha256(data).hexdigest()
    if expect and got != expect:
        raise UpdateError(f"{url}: sha256 {got}, the signed index says {expect}")
    return data, got


# ---------------------------------------------------------------- patches

def patch_set(deb_file_name, deb_bytes, prerequisites):
    """The selected patches of a Debian tarball or diff (only debian/patches/ is read)."""
    with tempfile.TemporaryDirectory() as tmp:
        artifact = os.path.join(tmp, os.path.basename(deb_file_name))
        write_bytes(artifact, deb_bytes)
        return debian_patches.select(debian_patches.extract(artifact, os.path.join(tmp, "x")), prerequisites)


def local_or_fetch(sources_dir, mirrors, pin):
    """The bytes of a pin's Debian tarball, from the source cache or the mirror."""
    deb = pin.get("debian")
    if not deb:
        return None
    p = os.path.join(sources_dir, deb["file"]) if sources_dir else None
    if p and os.path.isfile(p):
        data = read_bytes(p)
    else:
        mirror = mirrors.get(pin.get("archive", "main"))
        data = fetch(f"{mirror}/{pin['pool']}/{deb['file']}")
    if hashlib.sha256(data).hexdigest() != deb["sha256"]:
        raise UpdateError(f"{deb['file']}: does not match its pin")
    return data


# ---------------------------------------------------------------- main

def update_one(name, pin, indexes, mirrors, sources_dir, log):
    source = pin.get("debianSource", name)
    prereqs = pin.get("prerequisites", {})
    unfetchable = []
    for cand in candidates(source, indexes):
        where = locate(source, cand, mirrors)
        if where is None:
            unfetchable.append(cand.version)
            log(f"  {source} {cand.version}: not served by the pool")
            continue
        archive, mirror, directory, orig, deb = where
        suite = cand.suite
        same_version = pin.get("debianVersion") == cand.version
        # A pin that does not move needs no download; when the version is
        # indexed, the signed index still says whether its files changed.
        if same_version and pin.get("debian", {}).get("file") == deb:
            if cand.indexed:
                for fname, pinned in ((orig, pin.get("sha256")), (deb, pin["debian"].get("sha256"))):
                    signed = cand.files.get(fname, {}).get("sha256")
                    if signed and pinned and signed != pinned:
                        raise UpdateError(
                            f"{name}: {fname} of {cand.version} is pinned as {pinned} but the signed index "
                            f"says {signed} (a changed tarball behind an unchanged version)"
                        )
            new = dict(pin)
            new["newerUnfetchable"] = unfetchable
            return new, None
        orig_data, orig_sha = download_checked(f"{mirror}/{directory}/{orig}", cand.files.get(orig, {}).get("sha256") if cand.indexed else None)
        deb_data, deb_sha = download_checked(f"{mirror}/{directory}/{deb}", cand.files.get(deb, {}).get("sha256") if cand.indexed else None)
        if same_version:
            old_deb = pin.get("debian", {})
            if old_deb.get("sha256") not in (None, deb_sha) or pin.get("sha256") not in (None, orig_sha):
                raise UpdateError(
                    f"{name}: {cand.version} is pinned with other file contents than the pool serves now "
                    f"(a changed tarball behind an unchanged version)"
                )
        if sources_dir:
            os.makedirs(sources_dir, exist_ok=True)
            for fname, data in ((orig, orig_data), (deb, deb_data)):
                tmp = os.path.join(sources_dir, f".{fname}.tmp")
                write_bytes(tmp, data)
                os.replace(tmp, os.path.join(sources_dir, fname))
        new_patches = patch_set(deb, deb_data, prereqs)
        new = {k: v for k, v in pin.items()}
        new.update(
            {
                "debianSource": source,
                "version": upstream_version(cand.version),
                "debianVersion": cand.version,
                "suite": suite,
                "indexed": cand.indexed,
                "archive": archive,
                "pool": directory,
                "file": orig,
                "sha256": orig_sha,
                "debian": {"file": deb, "sha256": deb_sha},
                "newerUnfetchable": unfetchable,
            }
        )
        return new, new_patches
    raise UpdateError(f"{name}: no revision of {source} can be fetched (tried {', '.join(unfetchable)})")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pins", default=os.path.join(REPO, "nix", "offline", "sources.json"))
    ap.add_argument("--suite", default="trixie")
    ap.add_argument("--mirror")
    ap.add_argument("--security-mirror")
    ap.add_argument("--index", action="append", default=[], metavar="main|security=FILE",
                    help="a captured Sources(.xz) index instead of the mirror's (not signature-checked)")
    ap.add_argument("--sources-dir", default=os.environ.get("ARMORRED_SOURCES") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "armorred", "sources"))
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a pin would move")
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr)

    def mirror_of(kind, given):
        if given:
            return given.rstrip("/")
        r = subprocess.run(["bash", os.path.join(HERE, "debian-mirror.sh"), kind], capture_output=True, text=True)
        if r.returncode != 0:
            raise UpdateError(r.stderr.strip())
        return r.stdout.strip()

    try:
        mirrors = {"main": mirror_of("main", args.mirror), "security": mirror_of("security", args.security_mirror)}
        suites = {"main": args.suite, "security": f"{args.suite}-security"}
        given = dict(i.split("=", 1) for i in args.index)
        indexes = []
        for kind in ("security", "main"):
            if kind in given:
                text = read_index_file(given[kind])
            else:
                text = verified_sources(mirrors[kind], suites[kind])
            indexes.append((kind, suites[kind], parse_deb822(text)))

        pins = json.loads(read_bytes(args.pins))
        moved = 0
        out = {}
        for name in sorted(pins):
            pin = pins[name]
            if args.only and name not in args.only:
                out[name] = pin
                continue
            new, new_patches = update_one(name, pin, indexes, mirrors, None if args.check else args.sources_dir, log)
            out[name] = new
            if new_patches is None:
                print(f"{name}: {pin.get('debianVersion', pin.get('version'))} (current)")
            else:
                moved += 1
                try:
                    old = local_or_fetch(args.sources_dir, mirrors, pin)
                    old_cves = set(debian_patches.fixed_cves(patch_set(pin["debian"]["file"], old, pin.get("prerequisites", {})))) if old else set()
                except Exception as e:  # an old pin that can no longer be read still moves
                    log(f"  {name}: old patch set unreadable ({e}); listing every CVE as new")
                    old_cves = set()
                fixed = debian_patches.fixed_cves(new_patches)
                newly = [c for c in fixed if c not in old_cves]
                print(f"{name}: {pin.get('debianVersion', pin.get('version'))} -> {new['debianVersion']}"
                      f" ({len(fixed)} CVEs fixed by {sum(p['security'] for p in new_patches)} patches;"
                      f" newly fixed: {', '.join(newly) or 'none'})")
            if new.get("newerUnfetchable"):
                print(f"  {name}: newer revisions not fetchable here: {', '.join(new['newerUnfetchable'])}")
        if args.check:
            return 1 if moved else 0
        tmp = args.pins + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, args.pins)
        print(f"sources-update: {moved} pin(s) moved; review and commit {os.path.relpath(args.pins, REPO)}")
        return 0
    except (UpdateError, urllib.error.URLError, OSError, KeyError, ValueError) as e:
        print(f"sources-update: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
