# Example `package.file` for nix/build.nix:
#   { "package": { "file": "/abs/path/nix/offline/examples/hello/default.nix" }, ... }
# The file is a function called as `import file { armorred = <offline set>; }`
# and returns a derivation; using armorred.mkHardened gives it the tier's
# hardening flags and the attributes armorred reads (features, cflags, ...).
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
