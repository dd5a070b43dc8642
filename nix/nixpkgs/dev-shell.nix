# `nix develop`: the Rust toolchain plus what armorred and its tests call.
{ mkShell, cargo, rustc, clippy, rustfmt, rust-analyzer, nix, skopeo, umoci
, podman, runc, buildah, clang, lld, llvm, checksec, python3, git }:
mkShell {
  packages = [
    cargo rustc clippy rustfmt rust-analyzer
    nix          # nix-build / nix-instantiate / nix-store (armorred drives them)
    skopeo umoci podman runc buildah   # OCI layout checks and running images
    clang lld llvm                     # the offline set's host toolchain (clang, ld.lld, llvm-ar)
    checksec                           # independent check of the hardening analyzer
    python3                            # SBOM validators (tests/*.py; pip install spdx-tools cyclonedx-python-lib)
    git
  ];
}
