# The nixpkgs pin, read from the flake's lock file (single source of truth for
# `nix build`/`nix develop` and for `nix/build.nix`, which does not use flakes).
#
# The flake.lock narHash of a github input is the NAR hash of the unpacked
# tarball, which is exactly what builtins.fetchTarball's `sha256` checks (SRI
# form accepted, also by Nix 2.8). name = "source" gives the same store path
# as the flake input.
{ lockFile ? ../../flake.lock }:
let
  lock = builtins.fromJSON (builtins.readFile lockFile);
  node = lock.nodes.${lock.nodes.${lock.root}.inputs.nixpkgs};
  l = node.locked;
  checked =
    if l.type != "github" || l.owner != "NixOS" || l.repo != "nixpkgs" then
      throw "armorred: flake.lock: nixpkgs must be locked as github:NixOS/nixpkgs (got ${l.type}:${l.owner or "?"}/${l.repo or "?"})"
    else l;
in
rec {
  inherit (checked) rev narHash lastModified;
  shortRev = builtins.substring 0 12 rev;
  url = "https://github.com/NixOS/nixpkgs/archive/${rev}.tar.gz";
  fetchArgs = { inherit url; sha256 = narHash; name = "source"; };
  src = builtins.fetchTarball fetchArgs;
}
