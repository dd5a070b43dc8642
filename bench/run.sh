#!/usr/bin/env bash
# Layer-writing benchmark: armorred cold / warm / one path changed,
# against buildah and the tar | gzip | sha256sum limit, on one synthetic
# closure, on this machine, in this run. See bench/README.md.
#
#   bench/run.sh                  # prints the table; work files in a temp dir
#
# Environment: BENCH_WORK=DIR (work dir, kept), BENCH_KEEP=1 (keep the temp
# dir), BENCH_GZIP_LEVEL (default 6, for every tool), CARGO_TARGET_DIR.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
level=${BENCH_GZIP_LEVEL:-6}
cores=$(nproc)

die() {
  echo "bench: error: $*" >&2
  exit 1
}
say() { echo "bench: $*" >&2; }

for tool in cargo nix-build nix-store tar gzip pigz sha256sum buildah jq python3; do
  command -v "$tool" >/dev/null || die "\`$tool\` is missing (scripts/setup-system.sh installs it)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package \`time\`, in scripts/setup-system.sh)"

if [ -n "${BENCH_WORK:-}" ]; then
  work=$BENCH_WORK
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/var/tmp}/armorred-bench.XXXXXX")
  [ "${BENCH_KEEP:-}" = 1 ] || trap 'rm -rf "$work"' EXIT
fi
work=$(cd "$work" && pwd)

say "building armorred (release)"
(cd "$repo" && cargo build --release --quiet)
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac
bin=$target/release/armorred
[ -x "$bin" ] || die "no binary at $bin"

# The closure is built before any timing: Nix's share of a real build is the
# package build, which is the same whatever writes the image.
say "building the synthetic closure with Nix (first time: about a minute)"
root=$(nix-build "$repo/bench/synthetic.nix" --no-out-link)
changed_root=$(nix-build "$repo/bench/synthetic.nix" --arg changed true --no-out-link)
mapfile -t closure < <(nix-store --query --requisites "$root" | sort)
nar_bytes=$(nix-store --query --size "${closure[@]}" | awk '{ s += $1 } END { print s }')
files=$(find "${closure[@]}" -type f | wc -l)
rel=("${closure[@]#/}")

# Variant (c): the same recipe with one store path reseeded.
mkdir -p "$work/recipes-changed"
cp "$repo/bench/recipes/synth.toml" "$work/recipes-changed/"
printf '{ armorred }:\nimport %s/bench/synthetic.nix { changed = true; }\n' "$repo" \
  >"$work/recipes-changed/synth.nix"

# Every run reads the closure from the page cache, not the disk.
tar -C / -cf - "${rel[@]}" "${changed_root#/}" >/dev/null

runs=()
# measure ID LABEL COMMAND...: wall, CPU (user + sys, children included) and
# peak RSS of COMMAND; stderr lines get wall-clock stamps (bash's
# EPOCHREALTIME) to time armorred's stages from its log.
measure() {
  local id=$1 label=$2
  shift 2
  say "running ($id) $label"
  local ok=0
  /usr/bin/time -f '%e %U %S %M' -o "$work/$id.time" "$@" >"$work/$id.out" \
    2> >(while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done >"$work/$id.err") ||
    ok=$?
  wait $! 2>/dev/null || true
  if [ $ok != 0 ]; then
    cat "$work/$id.err" >&2
    die "($id) $label failed"
  fi
  runs+=("$id")
  printf '%s\n' "$label" >"$work/$id.label"
}

armorred() { # armorred RECIPES
  "$bin" -v build synth --tier hardened --recipes "$1" --nix-dir "$repo/nix" \
    --out "$work/out" --cache-dir "$work/cache" \
    --compression gzip --compression-level "$level" --json
}
export -f armorred
export bin repo work level

tar_args="-C / --sort=name --numeric-owner --owner=0 --group=0 --mtime=@1 -cf - ${rel[*]}"
measure e1 "tar -c | gzip -$level | sha256sum (limit, 1 thread)" \
  bash -o pipefail -c "tar $tar_args | gzip -$level | sha256sum"
measure e2 "tar -c | pigz -$level -p $cores | sha256sum (limit, parallel)" \
  bash -o pipefail -c "tar $tar_args | pigz -$level -p $cores | sha256sum"

cat >"$work/buildah.sh" <<EOF
set -euo pipefail
b=(buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver vfs)
c=\$("\${b[@]}" from scratch)
for p in ${closure[*]}; do "\${b[@]}" copy --quiet "\$c" "\$p" "\$p"; done
"\${b[@]}" commit --quiet --disable-compression=false "\$c" "oci:$work/buildah-oci:synth"
"\${b[@]}" rm "\$c" >/dev/null
EOF
measure d "buildah from scratch, copy the closure, commit to an OCI layout" bash "$work/buildah.sh"
buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver vfs \
  rmi --all --force >/dev/null 2>&1 || true
rm -rf "$work/buildah"

rm -rf "$work/cache" "$work/out"
measure a "armorred, cold cache" bash -c 'armorred "$repo/bench/recipes"'
measure b "armorred, warm rebuild, nothing changed" bash -c 'armorred "$repo/bench/recipes"'
measure c "armorred, one store path changed" bash -c 'armorred "$work/recipes-changed"'

changed_path=$(comm -13 <(printf '%s\n' "${closure[@]}") \
  <(nix-store --query --requisites "$changed_root" | sort) | grep -v -- '-synth-1.0$' || true)
changed_bytes=$(nix-store --query --size "$changed_path")

load=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$work" "$nar_bytes" "${#closure[@]}" "$files" "$changed_bytes" "$load" "${runs[@]}" <<'PY'
import json, os, platform, sys

work, nar, paths, files, changed, load = sys.argv[1:7]
ids = sys.argv[7:]
r = {}
for i in ids:
    wall, user, sys_, rss = open(f"{work}/{i}.time").read().split()[-4:]
    row = {
        "label": open(f"{work}/{i}.label").read().strip(),
        "wall": float(wall),
        "cpu": float(user) + float(sys_),
        "rss": int(rss) * 1024,
    }
    # armorred: the layer stage, from "writing N layers" to "analyzing".
    start = end = None
    for line in open(f"{work}/{i}.err"):
        t, _, msg = line.partition(" ")
        if "writing" in msg and "layers to" in msg:
            start = float(t)
        elif "analyzing the image's binaries" in msg and start is not None:
            end = float(t)
    if start is not None and end is not None:
        row["layers"] = end - start
    try:
        out = json.load(open(f"{work}/{i}.out"))
        row["cache"] = out.get("layer_cache")
        row["image"] = out["images"][0]
    except (ValueError, KeyError, IndexError):
        pass
    r[i] = row

def mib(b):
    return b / (1 << 20)

cpu = open("/proc/cpuinfo").read()
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("model name")), "?")
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) * 1024
print(f"Machine: {model}, {os.cpu_count()} cores, {mem / 2**30:.0f} GiB RAM, "
      f"{platform.system()} {platform.release()}; load average after the run: {load}")
print(f"Closure: {paths} store paths, {files} files, {mib(int(nar)):.0f} MiB (NAR); "
      f"the changed path is {mib(int(changed)):.0f} MiB")
if "a" in r and "image" in r["a"]:
    print(f"Image: {r['a']['image']['layers']} layers, "
          f"{mib(r['a']['image']['compressed_size']):.0f} MiB compressed")
print()
print("| run | wall s | CPU s | peak RSS MiB | layer stage s | layer cache |")
print("| --- | ---: | ---: | ---: | ---: | --- |")
for i in ["a", "b", "c", "d", "e1", "e2"]:
    if i not in r:
        continue
    x = r[i]
    layers = f"{x['layers']:.2f}" if "layers" in x else ""
    c = x.get("cache")
    cache = f"{c['hits']} hits, {c['misses']} misses" if c else ""
    label = x["label"].replace("|", "\\|")
    print(f"| ({i}) {label} | {x['wall']:.1f} | {x['cpu']:.1f} | {mib(x['rss']):.0f} | {layers} | {cache} |")
print()

def ratio(a, b, key):
    return r[a][key] / r[b][key]

rows = [
    ("(a)/(e2)", "a", "e2", "<= 1.2", lambda v: v <= 1.2),
    ("(a)/(e1)", "a", "e1", "", None),
    ("(a)/(d)", "a", "d", "<= 1/3 (3x faster than buildah)", lambda v: v <= 1 / 3),
    ("(b)/(a)", "b", "a", "<= 0.03", lambda v: v <= 0.03),
    ("(c)/(a)", "c", "a", "<= 0.10", lambda v: v <= 0.10),
]
print("| ratio | wall | CPU | target (wall) | met |")
print("| --- | ---: | ---: | --- | --- |")
for name, a, b, target, ok in rows:
    if a in r and b in r:
        w, c = ratio(a, b, "wall"), ratio(a, b, "cpu")
        met = "" if ok is None else ("yes" if ok(w) else "no")
        print(f"| {name} | {w:.3f} | {c:.3f} | {target} | {met} |")
if all(k in r and "layers" in r[k] for k in "abc"):
    print(f"| (b)/(a), layer stage only | {r['b']['layers'] / r['a']['layers']:.3f} | | <= 0.03 | "
          f"{'yes' if r['b']['layers'] / r['a']['layers'] <= 0.03 else 'no'} |")
    print(f"| (c)/(a), layer stage only | {r['c']['layers'] / r['a']['layers']:.3f} | | <= 0.10 | "
          f"{'yes' if r['c']['layers'] / r['a']['layers'] <= 0.10 else 'no'} |")
peak = max(r[k]["rss"] for k in "abc" if k in r)
print(f"| armorred peak RSS | {mib(peak):.0f} MiB | | <= 200 MB | {'yes' if peak <= 200e6 else 'no'} |")
PY
say "work files: $work"
