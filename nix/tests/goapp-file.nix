# A `package.file` that takes no `stdenv` (buildGoModule brings its own), for
# nix/tests/real-nixpkgs-check.nix: armorred hardens it through overrideAttrs
# in a tier without cfi/lto/safestack. Evaluated only, never built.
{ lib, buildGoModule }:
buildGoModule {
  pname = "goapp";
  version = "0.1";
  src = ./.;
  vendorHash = null;
  meta.license = lib.licenses.mit;
}
