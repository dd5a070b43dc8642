# Fixed-output fetches of the pinned upstream tarballs (pins: sources.json,
# shared with scripts/fetch-sources.sh). `sourceDir` only appears in the
# fetch URL: fixed-output derivations are identified by their hash, so the
# output store paths of the packages do not depend on where the cache lives.
# A tarball that does not match its pin fails the build with a hash mismatch.
{ sourceDir }:
let
  pins = builtins.fromJSON (builtins.readFile ./sources.json);
  dir =
    if sourceDir == null || sourceDir == "" then
      throw "armorred: sourceDir is required (run scripts/fetch-sources.sh DIR and pass that DIR)"
    else if builtins.substring 0 1 (toString sourceDir) != "/" then
      throw "armorred: sourceDir must be an absolute path, got '${toString sourceDir}'"
    else toString sourceDir;
  fetch = name: pin: import <nix/fetchurl.nix> {
    url = "file://${dir}/${pin.file}";
    inherit (pin) sha256;
    name = pin.file;
  };
in
builtins.mapAttrs (name: pin: pin // { src = fetch name pin; }) pins
