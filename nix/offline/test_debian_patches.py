"""Unit tests of the patch selection rule (debian_patches.py). Run by
tests/it/security_patches.rs with the test venv's Python:
    python -m unittest discover -s nix/offline -p 'test_*.py'
"""

import gzip
import io
import json
import os
import tarfile
import tempfile
import unittest

import debian_patches as dp

DIFF = "--- a/src/x.c\n+++ b/src/x.c\n@@ -1 +1 @@\n-a\n+b\n"


def patch(header, body=DIFF):
    return (header + "\n---\n" + body).encode()


def debian_tar(path, files, series):
    with tarfile.open(path, "w:xz") as tf:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        add("debian/patches/series", series.encode())
        for name, data in files.items():
            add(name, data)


class Classify(unittest.TestCase):
    def test_cve_in_name(self):
        self.assertEqual(dp.classify("CVE-2025-1234.patch", "Subject: x\n"), (True, "name", ["CVE-2025-1234"]))

    def test_cve_in_header_only(self):
        sec, by, cves = dp.classify("fix-overflow.patch", "Subject: fix\nBug: CVE-2024-0001 and CVE-2023-9\n---\n")
        self.assertEqual((sec, by, cves), (True, "header", ["CVE-2024-0001"]))

    def test_advisory_without_cve(self):
        sec, by, cves = dp.classify("fix.patch", "Description: see DSA-5123-1\n---\n")
        self.assertEqual((sec, by, cves), (True, "header", []))

    def test_cve_in_diff_body_does_not_count(self):
        text = "Subject: refactor\n---\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-CVE-2020-1111\n+y\n"
        self.assertEqual(dp.classify("refactor.patch", text), (False, None, []))

    def test_underscore_and_case(self):
        self.assertEqual(dp.classify("cve_2024_56171.patch", "")[2], ["CVE-2024-56171"])


class Select(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def make(self, files, series, prereqs=None):
        art = os.path.join(self.root, "x_1.0-1.debian.tar.xz")
        debian_tar(art, files, series)
        return dp.prepare(art, os.path.join(self.root, "out"), prereqs, {"source": "x"})

    def test_order_prereqs_and_record(self):
        files = {
            "debian/patches/debian-flavour.patch": patch("Subject: Debian default paths"),
            "debian/patches/context.patch": patch("Subject: refactor"),
            "debian/patches/CVE-2025-0001.patch": patch("Subject: fix"),
            "debian/patches/hardening-2.patch": patch("Subject: fix\nBug-Debian: https://bugs/1\nCVE: CVE-2025-0002"),
        }
        series = "debian-flavour.patch\ncontext.patch\n# a comment\nCVE-2025-0001.patch -p1\n\nhardening-2.patch\n"
        chosen = self.make(files, series, {"context.patch": "needed by CVE-2025-0001.patch"})
        self.assertEqual([p["name"] for p in chosen], ["context.patch", "CVE-2025-0001.patch", "hardening-2.patch"])
        self.assertEqual(chosen[0]["selectedBy"], "prerequisite: needed by CVE-2025-0001.patch")
        self.assertFalse(chosen[0]["security"])
        self.assertEqual(chosen[1]["options"], ["-p1"])
        self.assertEqual(dp.fixed_cves(chosen), ["CVE-2025-0001", "CVE-2025-0002"])
        out = os.path.join(self.root, "out")
        self.assertEqual(open(os.path.join(out, "series")).read().splitlines(),
                         ["context.patch", "CVE-2025-0001.patch\t-p1", "hardening-2.patch"])
        self.assertFalse(os.path.exists(os.path.join(out, "patches", "debian-flavour.patch")))
        record = json.load(open(os.path.join(out, "selection.json")))
        self.assertEqual(record["source"], "x")
        self.assertEqual(record["rule"], dp.RULE)

    def test_missing_prerequisite_is_an_error(self):
        with self.assertRaises(SystemExit) as e:
            self.make({"debian/patches/CVE-2025-1.patch": patch("x")}, "CVE-2025-1.patch\n", {"gone.patch": "why"})
        self.assertIn("gone.patch", str(e.exception))

    def test_hostile_members_are_not_extracted(self):
        art = os.path.join(self.root, "h_1-1.debian.tar.xz")
        with tarfile.open(art, "w:xz") as tf:
            for name in ("debian/patches/../../escape.patch", "/debian/patches/abs.patch"):
                info = tarfile.TarInfo(name)
                data = b"CVE-2020-0001"
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        dp.extract(art, os.path.join(self.root, "x"))
        self.assertFalse(os.path.exists(os.path.join(self.root, "escape.patch")))
        self.assertFalse(os.path.exists("/debian/patches/abs.patch"))

    def test_format_1_diff(self):
        art = os.path.join(self.root, "p_1.0-1.diff.gz")
        new_file = "CVE-2024-10001.patch"
        content = "Subject: fix\n---\n" + DIFF
        lines = content.splitlines(keepends=True)
        diff = (
            "--- p-1.0.orig/src/upstream.c\n+++ p-1.0/src/upstream.c\n@@ -1 +1 @@\n-x\n+y\n"
            f"--- p-1.0.orig/debian/patches/series\n+++ p-1.0/debian/patches/series\n@@ -0,0 +1 @@\n+{new_file}\n"
            f"--- p-1.0.orig/debian/patches/{new_file}\n+++ p-1.0/debian/patches/{new_file}\n"
            f"@@ -0,0 +1,{len(lines)} @@\n" + "".join("+" + l for l in lines)
        )
        with gzip.open(art, "wb") as f:
            f.write(diff.encode())
        chosen = dp.prepare(art, os.path.join(self.root, "out"))
        self.assertEqual([p["name"] for p in chosen], [new_file])
        self.assertEqual(open(os.path.join(self.root, "out", "patches", new_file)).read(), content)
        # the direct edit of an upstream file is not a patch we apply
        self.assertFalse(os.path.exists(os.path.join(self.root, "out", "debian-extracted", "src")))


if __name__ == "__main__":
    unittest.main()
