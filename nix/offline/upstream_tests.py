#!/usr/bin/env python3
"""Runs one upstream test suite inside a package's build and records the result.

Called from the package expressions of nix/offline/pkgs (after `make install`,
in the build tree of the very output that ships):

    python3 upstream_tests.py \
        --record "$out/nix-support/armorred-tests.json" \
        --package zlib --suite "make test" --mode ci --scope full \
        --parser zlib [--skip-tag TAG=REASON ...] -- make test

The command's output goes to the build log unchanged. The counts come from the
suite's own report (`--parser`), never from this script's guess, and each
suite appends one entry to the record (schema armorred.upstream-tests/v1):

    {"schema": ..., "package": ..., "mode": "ci"|"full",
     "passed": N, "failed": N, "skipped": N,
     "suites": [{"suite", "command", "scope", "passed", "failed", "skipped",
                 "failedTests", "skippedTags": [{"tag", "reason"}],
                 "exitStatus", "seconds"}]}

A suite fails the build when it reports a failure, exits non-zero, or passes
nothing: the error names the package, the suite and the failing tests.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

SCHEMA = "armorred.upstream-tests/v1"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_zlib(lines):
    """zlib's Makefile: one `*** zlib <kind> test OK|FAILED ***` line per test."""
    passed, failed = [], []
    for line in lines:
        m = re.search(r"\*\*\* (zlib .*test) (OK|FAILED) \*\*\*", line)
        if m:
            (passed if m.group(2) == "OK" else failed).append(m.group(1))
    return len(passed), failed, []


def parse_automake(lines):
    """Automake's parallel test harness: `PASS: name`, `FAIL: name`, ..."""
    passed, failed, skipped = [], [], []
    for line in lines:
        m = re.match(r"^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR): (.+?)\s*$", line)
        if not m:
            continue
        kind, name = m.groups()
        if kind in ("PASS", "XFAIL"):
            passed.append(name)
        elif kind == "SKIP":
            skipped.append(name)
        else:
            failed.append(f"{name} ({kind})")
    return len(passed), failed, skipped


def parse_libxml2(lines):
    """libxml2's runtest and testrecurse: `## <category>` headers, `Ran N tests, ...` per
    category, then `Total N tests, no errors` or `Total N tests, M errors, K
    leaks`. runtest counts runs, not names: a failure is named by the file it
    reports (`Error for F failed`, `Result for F on S failed`) and by its
    category."""
    total = errors = None
    failed = []
    category = "runtest"
    for line in lines:
        if line.startswith("## "):
            category = line[3:].strip()
            continue
        m = re.search(r"Total (\d+) tests, (?:no errors|(\d+) errors)", line)
        if m:
            total, errors = int(m.group(1)), int(m.group(2) or 0)
            continue
        # testapi: `Total: N functions, M tests, K errors`
        m = re.search(r"Total: \d+ functions, (\d+) tests, (\d+) errors", line)
        if m:
            total, errors = int(m.group(1)), int(m.group(2))
            continue
        m = re.search(r"^(?:Error|Result|Validation) for (\S+)(?: on (\S+))? failed", line)
        if m:
            failed.append(f"{category}: {m.group(1)}" + (f" on {m.group(2)}" if m.group(2) else ""))
    if total is None:
        return 0, ["runtest printed no `Total N tests` line"], []
    if errors and not failed:
        failed = [f"{category}: {errors} errors"]
    return total - errors, failed, []


def parse_redis(lines):
    """Redis' runtest: `[ok]: name`, `[err]: name`, `[skip]: name`,
    `[ignore]: name: reason` (filtered out by tag), `[exception]: ...`."""
    passed, failed, skipped = [], [], []
    for raw in lines:
        line = ANSI.sub("", raw)
        m = re.match(r"^\[(ok|err|skip|ignore|exception|TIMEOUT)\]: (.+?)\s*$", line)
        if not m:
            continue
        kind, name = m.groups()
        name = re.sub(r" \(\d+ ms\)$", "", name)
        if kind == "ok":
            passed.append(name)
        elif kind in ("skip", "ignore"):
            skipped.append(name)
        else:
            failed.append(f"{name} [{kind}]")
    return len(passed), failed, skipped


def parse_tap(lines):
    """TAP::Harness summaries (OpenSSL's run_tests.pl, perl's t/harness):
    one `name ..... ok|skipped: why|Failed n/m subtests|Dubious` line per
    test file (results may follow on later lines when jobs run in parallel)."""
    passed, failed, skipped = [], [], []
    for raw in lines:
        line = ANSI.sub("", raw).rstrip()
        m = re.match(r"^(?:\[[\d:]+\] )?(\S+?) \.+ ?(.*)$", line)
        if not m:
            continue
        name, rest = m.groups()
        if not (name.endswith(".t") or "/" in name or name.startswith("test_")):
            continue
        rest = re.sub(r"\s+\d+.*wallclock.*$", "", rest).strip()
        if rest == "ok" or rest.startswith("ok "):
            passed.append(name)
        elif rest.startswith("skipped"):
            skipped.append(f"{name}: {rest}")
        elif rest.startswith(("Failed", "Dubious", "not ok", "No subtests run")):
            failed.append(f"{name}: {rest}")
    for raw in lines:
        # the final report's list of failing files, when no summary line said so
        m = re.match(r"^(\S+\.t)\s+\(Wstat: (\d+).*Tests: \d+ Failed: (\d+)\)", ANSI.sub("", raw))
        if m and not any(f.startswith(m.group(1) + ":") for f in failed):
            failed.append(f"{m.group(1)}: Wstat {m.group(2)}, {m.group(3)} failed subtests")
    return len(passed), failed, skipped


def parse_busybox(lines):
    """BusyBox' testsuite/runtest: `PASS: name`, `FAIL: name`, `SKIPPED: name`."""
    passed, failed, skipped = [], [], []
    for line in lines:
        m = re.match(r"^(PASS|FAIL|SKIPPED|UNTESTED): (.+?)\s*$", line)
        if not m:
            continue
        kind, name = m.groups()
        if kind == "PASS":
            passed.append(name)
        elif kind == "FAIL":
            failed.append(name)
        else:
            skipped.append(name)
    return len(passed), failed, skipped


def parse_exit(lines, name):
    """A test program that reports only through its exit status."""
    return 1, [], []


PARSERS = {
    "zlib": parse_zlib,
    "automake": parse_automake,
    "libxml2": parse_libxml2,
    "redis": parse_redis,
    "tap": parse_tap,
    "busybox": parse_busybox,
    "exit": parse_exit,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", required=True, help="the JSON record to create or extend")
    ap.add_argument("--package", required=True)
    ap.add_argument("--version", default="")
    ap.add_argument("--suite", required=True, help="name of the suite, as upstream calls it")
    ap.add_argument("--mode", required=True, choices=["ci", "full"],
                    help="the build's upstreamTests mode")
    ap.add_argument("--scope", required=True,
                    help="`full` when the whole suite ran, else a description of the subset")
    ap.add_argument("--parser", required=True, choices=sorted(PARSERS))
    ap.add_argument("--skip-tag", action="append", default=[], metavar="TAG=REASON",
                    help="a test tag or file left out on purpose, with the reason")
    ap.add_argument("--allow-fail", action="append", default=[], metavar="NAME=REASON",
                    help="a failing test known to fail for a reason outside the build; "
                         "recorded as skipped, with the reason")
    ap.add_argument("--display", default=None,
                    help="the command as recorded (default: the argv, space-joined)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("no command after --")

    skipped_tags = []
    for s in a.skip_tag:
        tag, sep, reason = s.partition("=")
        if not sep or not tag or not reason:
            ap.error(f"--skip-tag needs TAG=REASON, got {s!r}")
        skipped_tags.append({"tag": tag, "reason": reason})
    allowed = {}
    for s in a.allow_fail:
        name, sep, reason = s.partition("=")
        if not sep or not name or not reason:
            ap.error(f"--allow-fail needs NAME=REASON, got {s!r}")
        allowed[name] = reason

    display = a.display or " ".join(cmd)
    print(f"armorred: upstream tests: {a.package}: {a.suite} ({a.scope}): {display}", flush=True)
    start = time.monotonic()
    lines = []
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    except OSError as e:
        print(f"armorred: error: {a.package}: suite `{a.suite}` could not start `{cmd[0]}`: {e}",
              file=sys.stderr)
        return 1
    for raw in proc.stdout:
        text = raw.decode("utf-8", "replace")
        sys.stdout.write(text)
        lines.append(text.rstrip("\n"))
    status = proc.wait()
    seconds = round(time.monotonic() - start)
    sys.stdout.flush()

    parser = PARSERS[a.parser]
    if a.parser == "exit":
        passed, failed, skipped = parser(lines, a.suite) if status == 0 else (0, [a.suite], [])
    else:
        passed, failed, skipped = parser(lines)
    known = [f for f in failed if any(f == n or f.startswith(n + " ") or f.startswith(n + ":")
                                      for n in allowed)]
    failed = [f for f in failed if f not in known]
    skipped = skipped + [f"{f}: known failure: {next(r for n, r in allowed.items() if f.startswith(n))}"
                         for f in known]

    problems = []
    if failed:
        problems.append("failing tests: " + "; ".join(failed[:40])
                        + (f" (and {len(failed) - 40} more)" if len(failed) > 40 else ""))
    if status != 0 and not (known and not failed):
        problems.append(f"the suite exited with status {status}")
    if passed == 0:
        problems.append("no test passed (the suite's report was not found in its output)")

    entry = {
        "suite": a.suite,
        "command": display,
        "scope": a.scope,
        "passed": passed,
        "failed": len(failed),
        "skipped": len(skipped),
        "failedTests": failed,
        "skippedTests": skipped[:200],
        "skippedTags": skipped_tags,
        "exitStatus": status,
        "seconds": seconds,
    }
    os.makedirs(os.path.dirname(a.record) or ".", exist_ok=True)
    if os.path.exists(a.record):
        with open(a.record) as f:
            rec = json.load(f)
        os.chmod(a.record, 0o644)
    else:
        rec = {"schema": SCHEMA, "package": a.package, "version": a.version,
               "mode": a.mode, "suites": []}
    rec["suites"].append(entry)
    for k in ("passed", "failed", "skipped"):
        rec[k] = sum(s[k] for s in rec["suites"])
    tmp = a.record + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, a.record)
    os.chmod(a.record, 0o444)

    summary = (f"{a.package}: {a.suite}: {passed} passed, {len(failed)} failed, "
               f"{len(skipped)} skipped in {seconds}s")
    if problems:
        print(f"armorred: error: upstream test suite failed: {summary}: " + "; ".join(problems),
              file=sys.stderr)
        return 1
    print(f"armorred: upstream tests: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
