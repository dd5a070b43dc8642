#!/usr/bin/env python3
"""Regenerates the seed corpora in fuzz/corpus/ (run from anywhere).

recipe: the repository's recipes. layout: small layouts in the layout
target's archive format (see fuzz_targets/layout.rs), built with tarfile,
benign and hostile. elf: tests/fixtures/recipes/*.c compiled with gcc/clang
under different hardening flags, kept small (a few KiB each).
"""
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

FUZZ = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(FUZZ)
CORPUS = os.path.join(FUZZ, "corpus")
SEP = b"\n%%\n"

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_ZST = "application/vnd.oci.image.layer.v1.tar+zstd"
REF = "org.opencontainers.image.ref.name"


def write(target, name, data):
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def recipes():
    for d in ("recipes", "tests/fixtures/recipes"):
        for n in sorted(os.listdir(os.path.join(REPO, d))):
            if n.endswith(".toml"):
                shutil.copy(os.path.join(REPO, d, n), os.path.join(CORPUS, "recipe", n))


# A few KiB once linked without crt files and with small page alignment:
# small seeds keep the layout target fast. It is analyzed, never run.
TINY_C = b"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
void _start(void) {
    char buf[32];
    volatile int n = 5;
    memcpy(buf, "hello", n);
    buf[5] = 0;
    puts(buf);
    _exit(0);
}
"""
TINY_FLAGS = ["-O2", "-s", "-nostartfiles", "-fPIE", "-pie",
              "-Wl,-z,noseparate-code,--build-id=none,-z,max-page-size=64,-z,common-page-size=64"]


def tar_bytes(entries, fmt=tarfile.USTAR_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            kind, name = e[0], e[1]
            ti = tarfile.TarInfo(name)
            ti.mtime = 1
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, e[2] if len(e) > 2 else 0o755
                t.addfile(ti)
            elif kind == "file":
                data = e[2]
                ti.size, ti.mode = len(data), e[3] if len(e) > 3 else 0o644
                t.addfile(ti, io.BytesIO(data))
            elif kind == "symlink":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, e[2], 0o777
                t.addfile(ti)
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, e[2]
                t.addfile(ti)
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
                t.addfile(ti)
    # tarfile pads to a 10 KiB record; keep only the end-of-archive blocks.
    data = buf.getvalue().rstrip(b"\0")
    return data + b"\0" * (-len(data) % 512 + 1024)


def huge_entry(name, declared, data=b"x" * 10):
    """A ustar header declaring `declared` bytes, followed by `data` only."""
    ti = tarfile.TarInfo(name)
    ti.size = 0
    h = bytearray(ti.tobuf(tarfile.GNU_FORMAT))
    # GNU base-256 size field, so sizes above 8 GiB fit.
    h[124:136] = b"\x80" + declared.to_bytes(11, "big")
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h[:512])
    return bytes(h[:512]) + data


def layout(layers, user="65534", extra_index=None, labels=None):
    """layers: list of (media type, section bytes)."""
    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [
            {
                "mediaType": MT_MANIFEST,
                "digest": "@MANIFEST@",
                "size": "@MANIFEST_SIZE@",
                "annotations": {REF: "fuzz:hardened"},
            }
        ]
        + (extra_index or []),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": "@CONFIG@", "size": "@CONFIG_SIZE@"},
        "layers": [
            {"mediaType": mt, "digest": f"@LAYER{i}@", "size": f"@LAYER{i}_SIZE@"}
            for i, (mt, _) in enumerate(layers)
        ],
    }
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:01Z",
        "config": {
            "User": user,
            "Entrypoint": ["/bin/hello"],
            "Cmd": ["-v"],
            "Env": ["PATH=/bin"],
            "ExposedPorts": {"8080/tcp": {}},
            "WorkingDir": "/",
            "StopSignal": "SIGQUIT",
            "Labels": labels or {"org.armorred.writable": "/tmp"},
        },
        "rootfs": {"type": "layers", "diff_ids": [f"@DIFF_ID{i}@" for i in range(len(layers))]},
        "history": [{"created_by": f"armorred layer {i}"} for i in range(len(layers))],
    }

    def text(v, sizes):
        s = json.dumps(v, sort_keys=True, separators=(",", ":"))
        for placeholder in sizes:
            s = s.replace(f'"@{placeholder}_SIZE@"', f"@{placeholder}_SIZE@")
        return s.encode()

    parts = [
        text(index, ["MANIFEST"]),
        text(manifest, ["CONFIG"] + [f"LAYER{i}" for i in range(len(layers))]),
        text(config, []),
    ]
    for mt, section in layers:
        prefix = {MT_GZ: b"gz:", MT_ZST: b"zst:"}.get(mt, b"")
        parts.append(prefix + section)
    return SEP.join(parts)


def layouts(elf):
    base = [
        ("dir", "etc"),
        ("file", "etc/passwd", b"root:x:0:0::/:/sbin/nologin\nnobody:x:65534:65534::/:/sbin/nologin\n"),
        ("dir", "tmp", 0o1777),
        ("dir", "nix"),
        ("dir", "nix/store"),
        ("dir", "nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-1.0"),
        ("dir", "nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-1.0/bin"),
        ("file", "nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-1.0/bin/hello", elf, 0o555),
        ("dir", "bin"),
        ("symlink", "bin/hello", "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-1.0/bin/hello"),
        ("hardlink", "bin/hello2", "nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-1.0/bin/hello"),
        ("file", "bin/su", b"#!/bin/sh\n", 0o4755),
        ("file", "var-www", b"", 0o666),
        ("fifo", "run-fifo"),
    ]
    upper = [
        ("file", "etc/.wh.passwd", b""),
        ("dir", "nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-1.0/bin"),
        ("file", "nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-1.0/bin/.wh..wh..opq", b""),
        ("file", "etc/passwd", b"nobody:x:65534:65534::/:/sbin/nologin\n"),
    ]
    write("layout", "one-layer", layout([(MT_TAR, tar_bytes(base))]))
    write("layout", "two-layers-whiteouts", layout([(MT_TAR, tar_bytes(base)), (MT_TAR, tar_bytes(upper))]))
    write("layout", "gzip-zstd", layout([(MT_GZ, tar_bytes(base)), (MT_ZST, tar_bytes(upper))], user=""))
    long = "nix/store/" + "b" * 32 + "-" + "long-name-" * 12 + "/lib/libx.so"
    write("layout", "pax-long-names", layout([(MT_TAR, tar_bytes([("dir", "nix"), ("file", long, elf, 0o555)], tarfile.PAX_FORMAT))]))
    write("layout", "gnu-long-names", layout([(MT_TAR, tar_bytes([("symlink", long, "../" + "x" * 120)], tarfile.GNU_FORMAT))]))
    sig = {
        "mediaType": MT_MANIFEST,
        "digest": "sha256:" + "0" * 64,
        "size": 2,
        "annotations": {REF: "sha256-" + "1" * 64 + ".sig"},
    }
    write("layout", "with-attachment", layout([(MT_TAR, tar_bytes(base[:3]))], extra_index=[sig]))
    write("layout", "no-layers", layout([]))
    # Hostile: each must be refused with an error, none may crash or hang.
    write("layout", "hostile-dotdot", layout([(MT_TAR, tar_bytes([("file", "../../etc/passwd", b"x")]))]))
    write("layout", "hostile-symlink", layout([(MT_TAR, tar_bytes([("dir", "a"), ("symlink", "a/b", "../../../../etc"), ("file", "a/b/passwd", b"x")]))]))
    write("layout", "hostile-huge-entry", layout([(MT_TAR, huge_entry("bin/big", 1 << 40))]))
    write("layout", "hostile-huge-elf", layout([(MT_TAR, huge_entry("bin/elf", 400 << 20, b"\x7fELF" + b"\0" * 60))]))


def elfs():
    srcs = os.path.join(REPO, "tests/fixtures/recipes")
    variants = {
        "hardened": ["gcc", "-O2", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-fPIE", "-pie",
                     "-Wl,-z,relro,-z,now", "-fcf-protection", "-s"],
        "weak": ["gcc", "-O0", "-fno-stack-protector", "-no-pie", "-Wl,-z,norelro", "-z", "execstack", "-s"],
        "symbols": ["gcc", "-O1", "-D_FORTIFY_SOURCE=2", "-Wl,-rpath,$ORIGIN/../lib:/usr/lib"],
        "safestack": ["clang", "-O1", "-fsanitize=safe-stack", "-s"],
    }
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tiny_c = os.path.join(tmp, "tiny.c")
        with open(tiny_c, "wb") as f:
            f.write(TINY_C)
        tiny = {
            "tiny-hardened": ["-fstack-protector-all", "-D_FORTIFY_SOURCE=2", "-fcf-protection",
                              "-Wl,-z,now,-z,relro"],
            "tiny-weak": ["-fno-stack-protector", "-Wl,-z,norelro,-z,execstack", "-Wl,-rpath,/usr/lib"],
        }
        for name, flags in tiny.items():
            dst = os.path.join(tmp, name)
            if subprocess.run(["gcc"] + TINY_FLAGS + flags + [tiny_c, "-o", dst]).returncode == 0:
                out[name] = open(dst, "rb").read()
        for name, cmd in variants.items():
            src = os.path.join(srcs, "weak.c" if name == "weak" else "hello.c")
            dst = os.path.join(tmp, name)
            if subprocess.run(cmd + [src, "-o", dst]).returncode == 0:
                out[name] = open(dst, "rb").read()
        lib = os.path.join(tmp, "libfuzz.so")
        if subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-Wl,-soname,libfuzz.so.1", "-Wl,-rpath,/opt/lib",
                           "-s", os.path.join(srcs, "hello.c"), "-o", lib]).returncode == 0:
            out["shared-lib"] = open(lib, "rb").read()
        obj = os.path.join(tmp, "hello.o")
        if subprocess.run(["gcc", "-c", "-O2", os.path.join(srcs, "hello.c"), "-o", obj]).returncode == 0:
            out["relocatable"] = open(obj, "rb").read()
    for name, data in out.items():
        write("elf", name, data)
    return out["tiny-hardened"]


if __name__ == "__main__":
    for t in ("recipe", "layout", "elf"):
        shutil.rmtree(os.path.join(CORPUS, t), ignore_errors=True)
        os.makedirs(os.path.join(CORPUS, t))
    recipes()
    layouts(elfs())
