# Evaluates flake.nix's `outputs` with a stand-in `nixpkgs` input (the
# ./fake-nixpkgs tree plus the two attributes of a flake input the outputs
# use: lib.genAttrs and legacyPackages), without flakes (Nix 2.8 cannot), and
# summarises what the flake offers, for tests/it/nix_exprs.rs.
let
  flake = import ../../flake.nix;
  fakeTree = ./fake-nixpkgs;
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  nixpkgsInput = {
    outPath = fakeTree;
    lib = { inherit genAttrs; };
    legacyPackages = genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: import fakeTree { localSystem = { inherit system; }; });
  };
  self = outputs // { outPath = ../..; };
  outputs = flake.outputs { inherit self; nixpkgs = nixpkgsInput; };
  sys = "x86_64-linux";
  viaOverlay = (import fakeTree { overlays = [ outputs.overlays.default ]; }).armorred;
  locked = outputs.lib.hardenedPackages {
    system = sys;
    package = { attr = "nginx"; };
    hardening = { cfi = true; lto = true; safestack = true; };
    overrideArgs = { withPerl = false; withMail = false; withStream = false; modules = [ ]; };
    # CFI cannot cover nginx's dynamic modules
    drop = [ "http_perl" "http_xslt" "http_image_filter" "http_geoip" ];
  };
  # nix/nixpkgs/armorred.nix and dev-shell.nix with recording stubs for the
  # few nixpkgs functions they call
  armorredArgs = import ../nixpkgs/armorred.nix {
    lib = {
      cleanSourceWith = a: a;
      cleanSourceFilter = _: _: true;
      licenses.asl20 = "Apache-2.0";
      platforms.linux = [ sys ];
    };
    rustPlatform.buildRustPackage = a: a;
    makeWrapper = "makeWrapper";
  };
  shellArgs = import ../nixpkgs/dev-shell.nix (
    { mkShell = a: a; }
    // genAttrs [ "cargo" "rustc" "clippy" "rustfmt" "rust-analyzer" "nix" "skopeo" "umoci"
      "podman" "runc" "buildah" "clang" "lld" "llvm" "checksec" "python3" "git" ] (n: n)
  );
in
{
  inherit (flake) description;
  armorredPackage = {
    inherit (armorredArgs) pname version doCheck postInstall;
    lockFileExists = builtins.pathExists armorredArgs.cargoLock.lockFile;
    lockFile = baseNameOf (toString armorredArgs.cargoLock.lockFile);
    srcIsRepo = builtins.pathExists (armorredArgs.src.src + "/Cargo.toml");
    mainProgram = armorredArgs.meta.mainProgram;
  };
  devShellPackages = shellArgs.packages;
  inputUrl = flake.inputs.nixpkgs.url;
  outputs = builtins.attrNames outputs;
  packages = builtins.attrNames outputs.packages.${sys};
  packageSystems = builtins.attrNames outputs.packages;
  apps = builtins.mapAttrs (_: a: a.type) outputs.apps.${sys};
  devShells = builtins.attrNames outputs.devShells.${sys};
  overlayIsFunction = builtins.isFunction outputs.overlays.default;
  overlayNginx = {
    inherit (viaOverlay.nginx) pname stdenvName;
    stdenv = viaOverlay.nginx.armorred.stdenv;
  };
  hardenedPackagesLocked = {
    inherit (locked.package) pname stdenvName standinArgs hardeningDisable;
    names = locked.package.armorred.names;
  };
}
