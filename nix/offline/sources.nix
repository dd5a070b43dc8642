# The offline set's sources: for each pin in sources.json (moved by
# scripts/sources-update.py, fetched by scripts/fetch-sources.sh), the
# upstream tarball plus the Debian security patches of the pinned Debian
# revision, applied. What a package gets as `src` is that patched tree.
#
# Both files are fixed-output fetches pinned by sha256: a file that does not
# match fails the build with a hash mismatch. `sourceDir` only appears in the
# fetch URL, and fixed-output derivations are identified by their hash, so
# store paths do not depend on where the cache lives.
#
# The patch selection is nix/offline/debian_patches.py (the one statement of
# the rule), run at build time on the pinned Debian tarball: nothing of
# Debian's is copied into this repository. The record of what was applied
# (schema armorred.debian-patches/v1) is left at the tree's root as
# `.armorred-patches.json`; the builder installs it as
# `$out/nix-support/armorred-patches.json`, where the SBOM and VEX read it.
#
# `debianPatches = false` gives the bare upstream tarballs: only for tests
# that show a patch's effect by building the same package without it.
{ sourceDir, debianPatches ? true }:
let
  pins = builtins.fromJSON (builtins.readFile ./sources.json);
  dir =
    if sourceDir == null || sourceDir == "" then
      throw "armorred: sourceDir is required (run scripts/fetch-sources.sh DIR and pass that DIR)"
    else if builtins.substring 0 1 (toString sourceDir) != "/" then
      throw "armorred: sourceDir must be an absolute path, got '${toString sourceDir}'"
    else toString sourceDir;
  fetch = file: sha256: import <nix/fetchurl.nix> {
    url = "file://${dir}/${file}";
    inherit sha256;
    name = builtins.replaceStrings [ "~" "+" ":" ] [ "-" "-" "-" ] file;
  };
  # what the record says about the pin (the rest comes from the selection)
  meta = name: pin: {
    schema = "armorred.debian-patches/v1";
    source = pin.debianSource or name;
    upstreamVersion = pin.version;
    inherit (pin) debianVersion suite;
    indexed = pin.indexed or true;
    origTarball = { inherit (pin) file sha256; };
    debianTarball = { inherit (pin.debian) file sha256; };
    newerUnfetchable = pin.newerUnfetchable or [ ];
  };
  patched = name: pin:
    let
      orig = fetch pin.file pin.sha256;
      debian = fetch pin.debian.file pin.debian.sha256;
      prereqs = pin.prerequisites or { };
    in
    derivation {
      name = "${pin.debianSource or name}-${pin.version}-source";
      system = "x86_64-linux";
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      inherit orig debian;
      origFile = pin.file;
      debianFile = pin.debian.file;
      selector = ./debian_patches.py;
      metaJson = builtins.toJSON (meta name pin);
      prereqsJson = builtins.toJSON prereqs;
      args = [ "-ec" ''
        export LC_ALL=C
        cd "$NIX_BUILD_TOP"
        mkdir unpack sel
        (cd unpack && tar --no-same-owner --no-same-permissions -xf "$orig")
        set -- unpack/*
        if [ $# -eq 1 ] && [ -d "$1" ]; then top="$1"; else top=unpack; fi
        python3 "$selector" prepare "$debian" sel --meta "$metaJson" --prereqs-json "$prereqsJson"
        while IFS="$(printf '\t')" read -r patch opts; do
          [ -n "$patch" ] || continue
          echo "armorred: applying Debian patch $patch"
          if ! (cd "$top" && patch ''${opts:--p1} --batch --forward --no-backup-if-mismatch -i "$NIX_BUILD_TOP/sel/patches/$patch"); then
            echo "armorred: error: Debian patch $patch of $debianFile does not apply to $origFile (add the patch it needs as a prerequisite in nix/offline/sources.json, with the reason)" >&2
            exit 1
          fi
        done < sel/series
        cp sel/selection.json "$top/.armorred-patches.json"
        mv "$top" "$out"
      '' ];
    };
in
builtins.mapAttrs (name: pin: pin // {
  src = if debianPatches then patched name pin else fetch pin.file pin.sha256;
}) pins
