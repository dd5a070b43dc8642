# The stand-in nixpkgs as a flake input, for `nix eval --override-input
# nixpkgs path:nix/tests/fake-nixpkgs` on this repository's flake (pure
# evaluation, no download): the two attributes flake.nix uses, plus the tree
# itself (`import nixpkgs { … }` imports ./default.nix).
{
  outputs = { self }:
    let
      genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    in
    {
      lib = { inherit genAttrs; };
      legacyPackages = genAttrs [ "x86_64-linux" "aarch64-linux" ]
        (system: import ./. { localSystem = { inherit system; }; });
    };
}
