# A stand-in for a nixpkgs source tree, small enough to evaluate with Nix 2.8
# and without a download: `import ./fake-nixpkgs { localSystem; overlays; config; }`
# gives a fixpoint of ./pkgs.nix and the overlays, like nixpkgs does.
#
# It mimics the parts of nixpkgs the armorred overlay relies on, with the
# behaviour read from the nixpkgs sources (see nix/nixpkgs/README.md):
# mkDerivation rejecting unknown hardening flags and env/top-level clashes,
# overrideAttrs, callPackage's .override, stdenvAdapters.overrideCC,
# llvmPackages.{clang,bintools}, nginx's stable.nix -> generic.nix argument
# forwarding, redis' and busybox's arguments. Every fake derivation records
# the stdenv, compiler and bintools it was made with and the arguments it got.
{ localSystem ? { system = "x86_64-linux"; }
, system ? localSystem.system
, overlays ? [ ]
, config ? { }
, crossSystem ? null
}:
let
  base = import ./pkgs.nix { inherit system; };
  fix = f: let x = f x; in x;
  extends = overlay: f: self: let super = f self; in super // overlay self super;
in
fix (builtins.foldl' (f: o: extends o f) base overlays)
