# Generic builder of armorred's offline package set (POSIX sh; run by
# /bin/sh from mkHardened). Phases are shell strings from the package
# expression, run with `eval` in the source directory:
#   preConfigure, configurePhase, buildPhase, installPhase, postInstall
# then a fixup that strips debug info only (the symbol table is kept for the
# CFI/SafeStack analysis) and rejects RUNPATH/RPATH/PT_INTERP outside /nix/store.
set -eu

if [ -z "${NIX_BUILD_CORES:-}" ] || [ "$NIX_BUILD_CORES" = 0 ]; then
  NIX_BUILD_CORES="$(nproc 2>/dev/null || echo 2)"
fi
export NIX_BUILD_CORES
export HOME="$NIX_BUILD_TOP/home"
mkdir -p "$HOME"
export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=1
# shared libraries find their sibling libraries (libssl -> libcrypto) in $out
if [ "${kind:-exe}" = lib ]; then
  LDFLAGS="$LDFLAGS -Wl,-rpath,$out/lib"
fi
export CC CXX AR RANLIB NM CFLAGS CXXFLAGS LDFLAGS

echo "armorred: building $name with $toolchainId ($NIX_BUILD_CORES jobs)"
echo "armorred: hardening: $hardeningNames"
echo "armorred: CFLAGS=$CFLAGS"
echo "armorred: LDFLAGS=$LDFLAGS"
start_time=$(date +%s)

cd "$NIX_BUILD_TOP"
if [ -d "$src" ]; then
  cp -R --preserve=timestamps "$src" source
  chmod -R u+w source
  srcdir=source
else
  mkdir unpack
  (cd unpack && tar -xf "$src")
  set -- unpack/*
  if [ -n "${sourceRoot:-}" ]; then
    srcdir="unpack/$sourceRoot"
  elif [ $# -eq 1 ] && [ -d "$1" ]; then
    srcdir="$1"
  else
    srcdir=unpack
  fi
fi
cd "$srcdir"
srcroot="$(pwd)"

runPhase() {
  eval "phase=\${$1:-}"
  if [ -n "$phase" ]; then
    echo "armorred: == $1"
    eval "$phase"
  fi
}

runPhase preConfigure
runPhase configurePhase
runPhase buildPhase
mkdir -p "$out"
runPhase installPhase
runPhase postInstall

# The record of the Debian security patches applied to this source
# (nix/offline/sources.nix), kept with the output so the SBOM and VEX say
# what this build really carries.
if [ -f "$srcroot/.armorred-patches.json" ]; then
  mkdir -p "$out/nix-support"
  cp "$srcroot/.armorred-patches.json" "$out/nix-support/armorred-patches.json"
  chmod 0444 "$out/nix-support/armorred-patches.json"
fi

# ---- fixup ---------------------------------------------------------------
is_elf() { [ -f "$1" ] && [ ! -L "$1" ] && [ "$(head -c 4 "$1" | tail -c 3)" = "ELF" ]; }

find "$out" -name '*.la' -type f -delete
bad=0
for f in $(find "$out" -type f \( -perm -0100 -o -name '*.so*' -o -name '*.a' \) 2>/dev/null); do
  is_elf "$f" || continue
  if [ "${dontStrip:-}" != 1 ]; then
    chmod u+w "$f"
    strip --strip-debug "$f" 2>/dev/null || true
  fi
  # RUNPATH/RPATH only inside the store
  for rp in $(readelf -d "$f" 2>/dev/null | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p' | tr ':' ' '); do
    case "$rp" in
      /nix/store/*) ;;
      *) echo "armorred: error: $f has RUNPATH/RPATH entry outside /nix/store: $rp" >&2; bad=1 ;;
    esac
  done
  interp="$(readelf -l "$f" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')"
  case "$interp" in
    ""|/nix/store/*) ;;
    *) echo "armorred: error: $f uses interpreter outside /nix/store: $interp" >&2; bad=1 ;;
  esac
done
[ "$bad" = 0 ] || exit 1

end_time=$(date +%s)
echo "armorred: $name built in $((end_time - start_time))s"
