# armorred itself, for `nix build .#armorred` / `nix run .#armorred` (flake.nix).
# The Nix expressions and recipes are installed next to the binary and found
# through ARMORRED_NIX_DIR / ARMORRED_RECIPES (defaults; the flags still win).
{ lib, rustPlatform, makeWrapper }:
let
  cargoToml = builtins.fromTOML (builtins.readFile ../../Cargo.toml);
  ignored = [ "target" ".venv" "out" "result" "fuzz" ];
in
rustPlatform.buildRustPackage {
  pname = "armorred";
  inherit (cargoToml.package) version;

  src = lib.cleanSourceWith {
    src = ../..;
    filter = path: type:
      !(builtins.elem (baseNameOf path) ignored) && lib.cleanSourceFilter path type;
  };
  cargoLock.lockFile = ../../Cargo.lock;

  nativeBuildInputs = [ makeWrapper ];

  # The integration tests build images with Nix, skopeo, umoci and podman;
  # they cannot run in the build sandbox (run `cargo test` in `nix develop`).
  doCheck = false;

  postInstall = ''
    mkdir -p "$out/share/armorred"
    cp -r nix recipes flake.lock "$out/share/armorred/"
    if [ -d scripts ]; then cp -r scripts "$out/share/armorred/"; fi
    wrapProgram "$out/bin/armorred" \
      --set-default ARMORRED_NIX_DIR "$out/share/armorred/nix" \
      --set-default ARMORRED_RECIPES "$out/share/armorred/recipes"
  '';

  meta = {
    description = cargoToml.package.description;
    homepage = cargoToml.package.repository;
    license = lib.licenses.asl20;
    mainProgram = "armorred";
    platforms = lib.platforms.linux;
  };
}
