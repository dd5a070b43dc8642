# Example `package.file` for nix/build.nix:
#   { "package": { "file": "/abs/path/nix/offline/examples/hello/default.nix" }, ... }
# The file is called like nixpkgs' callPackage: each named argument comes
# from the package set (`armorred`, or a package such as `zlib`), and it
# returns a derivation. armorred.mkHardened gives it the tier's hardening and
# the attributes armorred reads (features, cflags, ...). Written only against
# `armorred` (mkHardened, resolveFeatures), this file builds in the nixpkgs
# set too, which passes its own `armorred` with the same helpers.
{ armorred }:
let
  # optional compile-time features; `drop` is validated against them
  r = armorred.resolveFeatures { pname = "hello"; features = [ "greeting" ]; };
in
armorred.mkHardened {
  pname = "hello";
  version = "1.0";
  licenses = [ "MIT" ];
  src = builtins.path { path = ./.; name = "hello-src"; filter = p: t: baseNameOf p == "hello.c"; };
  features = r.features;
  enabledFeatures = r.enabled;
  droppedFeatures = r.dropped;
  buildPhase = ''
    $CC $CFLAGS ${if builtins.elem "greeting" r.enabled then "" else "-DNO_GREETING"} hello.c $LDFLAGS -o hello
  '';
  installPhase = ''
    mkdir -p "$out/bin"
    cp hello "$out/bin/hello"
  '';
  postInstall = ''
    "$out/bin/hello" builder
  '';
}
