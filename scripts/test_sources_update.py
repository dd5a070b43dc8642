"""Tests of scripts/sources-update.py on Sources indexes captured from Debian 13
on 2026-12-02 (tests/fixtures/debian/), against a fake pool on disk (file://
mirrors) that, like the registry these machines reach, lags the index: the
indexed nginx u10/u11 and pcre2 u3 are missing, older revisions are served.
Run by tests/it/security_patches.rs with the test venv's Python:
    python -m unittest discover -s scripts -p 'test_*.py'
"""

import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import unittest
import gzip

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIXTURES = os.path.join(REPO, "tests", "fixtures", "debian")
SCRIPT = os.path.join(HERE, "sources-update.py")

spec = importlib.util.spec_from_file_location("sources_update", SCRIPT)
su = importlib.util.module_from_spec(spec)
spec.loader.exec_module(su)


def tar_bytes(files, mode="w:xz"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def debian_tarball(cves):
    files = {"debian/patches/debian-paths.patch": b"Subject: Debian paths\n---\n"}
    series = ["debian-paths.patch"]
    for c in cves:
        files[f"debian/patches/{c}.patch"] = f"Subject: fix {c}\n---\n".encode()
        series.append(f"{c}.patch")
    files["debian/patches/series"] = ("\n".join(series) + "\n").encode()
    return tar_bytes(files)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class Versions(unittest.TestCase):
    def test_dpkg_order(self):
        ordered = ["1.0~rc1", "1.0", "1.0-1~deb13u1", "1.0-1", "1.0-1+deb13u2", "1.0-1+deb13u10", "1:0.1"]
        for a, b in zip(ordered, ordered[1:]):
            self.assertLess(su.compare_versions(a, b), 0, f"{a} < {b}")
            self.assertGreater(su.compare_versions(b, a), 0)
        self.assertEqual(su.compare_versions("5:8.0.2-3", "5:8.0.2-3"), 0)

    def test_upstream_version(self):
        self.assertEqual(su.upstream_version("2.12.7+dfsg+really2.9.14-2.1+deb13u3"), "2.9.14")
        self.assertEqual(su.upstream_version("1:1.3.dfsg+really1.3.1-1"), "1.3.1")
        self.assertEqual(su.upstream_version("5:8.0.2-3+deb13u2"), "8.0.2")

    def test_earlier_revisions(self):
        self.assertEqual(su.earlier_security_revisions("1.26.3-3+deb13u3"),
                         ["1.26.3-3+deb13u2", "1.26.3-3+deb13u1", "1.26.3-3"])
        # a ~deb backport's base was never in the release
        self.assertEqual(su.earlier_security_revisions("10.46-1~deb13u2"), ["10.46-1~deb13u1"])


class Update(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        t = self.tmp.name
        self.main = os.path.join(t, "debian")
        self.sec = os.path.join(t, "debian-security")
        self.cache = os.path.join(t, "sources")
        self.pins = os.path.join(t, "sources.json")
        nginx_sec = os.path.join(self.sec, "pool/updates/main/n/nginx")
        pcre_main = os.path.join(self.main, "pool/main/p/pcre2")
        os.makedirs(nginx_sec)
        os.makedirs(pcre_main)
        self.orig = tar_bytes({"nginx-1.26.3/README": b"nginx"}, "w:gz")
        self.u7 = debian_tarball(["CVE-2025-53859"])
        self.u9 = debian_tarball(["CVE-2025-53859", "CVE-2026-1642", "CVE-2026-27651"])
        for name, data in {
            "nginx_1.26.3.orig.tar.gz": self.orig,
            "nginx_1.26.3-3+deb13u7.debian.tar.xz": self.u7,
            "nginx_1.26.3-3+deb13u9.debian.tar.xz": self.u9,
        }.items():
            write_bytes(os.path.join(nginx_sec, name), data)
        self.pcre_orig = tar_bytes({"pcre2-10.46/README": b"pcre2"}, "w:gz")
        self.pcre_diff = gzip.compress(b"--- pcre2-10.46.orig/README\n+++ pcre2-10.46/README\n@@ -1 +1 @@\n-a\n+b\n")
        write_bytes(os.path.join(pcre_main, "pcre2_10.46.orig.tar.gz"), self.pcre_orig)
        write_bytes(os.path.join(pcre_main, "pcre2_10.46-1~deb13u2.diff.gz"), self.pcre_diff)
        os.makedirs(self.cache)
        write_bytes(os.path.join(self.cache, "nginx_1.26.3-3+deb13u7.debian.tar.xz"), self.u7)
        self.write_pins({
            "nginx": {
                "debianSource": "nginx", "version": "1.26.3", "debianVersion": "1.26.3-3+deb13u7",
                "suite": "trixie-security", "indexed": False, "archive": "security",
                "pool": "pool/updates/main/n/nginx",
                "file": "nginx_1.26.3.orig.tar.gz", "sha256": sha(self.orig),
                "debian": {"file": "nginx_1.26.3-3+deb13u7.debian.tar.xz", "sha256": sha(self.u7)},
                "prerequisites": {},
            },
            "pcre2": {
                "debianSource": "pcre2", "version": "10.42",
                "file": "pcre2_10.42.orig.tar.gz", "sha256": "0" * 64,
            },
        })

    def tearDown(self):
        self.tmp.cleanup()

    def write_pins(self, pins):
        with open(self.pins, "w") as f:
            json.dump(pins, f, indent=2, sort_keys=True)

    def read_pins(self):
        return json.loads(read_bytes(self.pins))

    def run_update(self, *extra):
        return subprocess.run(
            [sys.executable, SCRIPT, "--pins", self.pins, "--sources-dir", self.cache,
             "--mirror", "file://" + self.main, "--security-mirror", "file://" + self.sec,
             "--index", "main=" + os.path.join(FIXTURES, "Sources-trixie-main"),
             "--index", "security=" + os.path.join(FIXTURES, "Sources-trixie-security"), *extra],
            capture_output=True, text=True,
        )

    def test_moves_to_newest_fetchable_and_names_the_rest(self):
        r = self.run_update()
        self.assertEqual(r.returncode, 0, r.stderr)
        pins = self.read_pins()
        n = pins["nginx"]
        self.assertEqual(n["debianVersion"], "1.26.3-3+deb13u9")
        self.assertEqual(n["newerUnfetchable"], ["1.26.3-3+deb13u11", "1.26.3-3+deb13u10"])
        self.assertFalse(n["indexed"], "u9 is only in the pool, not in the index")
        self.assertEqual(n["debian"], {"file": "nginx_1.26.3-3+deb13u9.debian.tar.xz", "sha256": sha(self.u9)})
        self.assertEqual(n["sha256"], sha(self.orig))
        self.assertIn("nginx: 1.26.3-3+deb13u7 -> 1.26.3-3+deb13u9", r.stdout)
        self.assertIn("newly fixed: CVE-2026-1642, CVE-2026-27651", r.stdout)
        self.assertIn("newer revisions not fetchable here: 1.26.3-3+deb13u11, 1.26.3-3+deb13u10", r.stdout)
        p = pins["pcre2"]
        self.assertEqual((p["debianVersion"], p["version"]), ("10.46-1~deb13u2", "10.46"))
        self.assertEqual(p["debian"]["file"], "pcre2_10.46-1~deb13u2.diff.gz")
        self.assertEqual(p["newerUnfetchable"], ["10.46-1~deb13u3"])
        # the files are in the source cache, ready for the build
        self.assertEqual(sha(read_bytes(os.path.join(self.cache, n["debian"]["file"]))), sha(self.u9))
        # a second run moves nothing
        r = self.run_update("--check")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("nginx: 1.26.3-3+deb13u9 (current)", r.stdout)

    def test_check_reports_a_pending_move_and_writes_nothing(self):
        before = read_bytes(self.pins)
        r = self.run_update("--check")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(read_bytes(self.pins), before)

    def test_changed_tarball_behind_unchanged_version_is_an_error(self):
        self.run_update()
        pins = self.read_pins()
        # the pool now serves other bytes under the pinned name
        pins["nginx"]["debian"]["sha256"] = "f" * 64
        pins["nginx"]["debian"]["file"] = "nginx_1.26.3-3+deb13u9.debian.tar.xz"
        pins["nginx"]["debianVersion"] = "1.26.3-3+deb13u8"  # forces a re-download of u9
        self.write_pins(pins)
        os.remove(os.path.join(self.sec, "pool/updates/main/n/nginx/nginx_1.26.3-3+deb13u9.debian.tar.xz"))
        write_bytes(os.path.join(self.sec, "pool/updates/main/n/nginx/nginx_1.26.3-3+deb13u9.debian.tar.xz"), 
            debian_tarball(["CVE-2025-53859"]))
        pins["nginx"]["debianVersion"] = "1.26.3-3+deb13u9"
        pins["nginx"]["debian"]["file"] = "other-name.debian.tar.xz"
        self.write_pins(pins)
        r = self.run_update()
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("changed tarball behind an unchanged version", r.stderr)

    def test_pin_differing_from_the_signed_index_is_an_error(self):
        # the pool serves the indexed u11; the pin claims other bytes for it
        pool = os.path.join(self.sec, "pool/updates/main/n/nginx")
        write_bytes(os.path.join(pool, "nginx_1.26.3-3+deb13u11.debian.tar.xz"), self.u9)
        pins = self.read_pins()
        pins["nginx"]["debianVersion"] = "1.26.3-3+deb13u11"
        pins["nginx"]["debian"] = {"file": "nginx_1.26.3-3+deb13u11.debian.tar.xz", "sha256": "0" * 64}
        self.write_pins(pins)
        r = self.run_update("--check", "--only", "nginx")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("the signed index says", r.stderr)

    def test_nothing_fetchable_is_an_error_naming_what_was_tried(self):
        for f in os.listdir(os.path.join(self.sec, "pool/updates/main/n/nginx")):
            if ".debian.tar." in f:
                os.remove(os.path.join(self.sec, "pool/updates/main/n/nginx", f))
        r = self.run_update("--only", "nginx")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no revision of nginx can be fetched", r.stderr)
        self.assertIn("1.26.3-3+deb13u11", r.stderr)


if __name__ == "__main__":
    unittest.main()
