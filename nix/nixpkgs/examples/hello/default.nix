# Example `package.file` written for the nixpkgs set (see ../../README.md):
#   { "package": { "file": "/abs/path/nix/nixpkgs/examples/hello/default.nix" }, … }
# It is called like nixpkgs' callPackage: `lib` and `stdenv` come from
# nixpkgs, `stdenv` being the tier's (clang + lld for cfi/lto/safestack).
# armorred adds the hardening names and flags with overrideAttrs, so the file
# says nothing about hardening. It reuses the offline example's source.
# A file that must also build in the offline set takes `armorred` instead
# and builds with armorred.mkHardened (nix/offline/examples/hello).
{ lib, stdenv }:
stdenv.mkDerivation {
  pname = "hello";
  version = "1.0";
  src = builtins.path {
    path = ../../../offline/examples/hello;
    name = "hello-src";
    filter = p: t: baseNameOf p == "hello.c";
  };
  buildPhase = ''
    runHook preBuild
    $CC -O2 hello.c -o hello
    runHook postBuild
  '';
  installPhase = ''
    runHook preInstall
    mkdir -p "$out/bin"
    cp hello "$out/bin/hello"
    runHook postInstall
  '';
  meta.license = lib.licenses.mit;
}
