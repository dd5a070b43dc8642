# A synthetic closure for bench/run.sh: 60 store paths of generated data
# (1 GiB in all) and a root that references every one of them, built
# offline by plain derivations (no nixpkgs; see gen.sh for the content).
#
#   nix-build bench/synthetic.nix                      # the closure's root
#   nix-build bench/synthetic.nix --arg changed true   # path 10 differs
#
# Sizes: 4 paths of 96 MiB, 12 of 24 MiB, 44 of 8 MiB, so a few large
# layers and many small ones, as in a real closure. `changed` reseeds path 10
# (24 MiB, close to the 17 MiB mean): the "one store path changed" rebuild.
{ changed ? false }:
let
  MiB = 1024 * 1024;
  count = 60;
  changedIndex = 10;
  sizeOf = i: if i < 4 then 96 * MiB else if i < 16 then 24 * MiB else 8 * MiB;

  mkPath = i: derivation {
    name = "synth-data-${toString i}-1.0";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ ./gen.sh ];
    PATH = "/usr/bin:/bin";
    seed = i + (if changed && i == changedIndex then 1000 else 0);
    size = sizeOf i;
  };

  paths = builtins.genList mkPath count;
in
derivation {
  name = "synth-1.0";
  pname = "synth";
  version = "1.0";
  system = "x86_64-linux";
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  # A list becomes a space-separated string of store paths; writing them
  # into the output makes every one a runtime reference.
  deps = paths;
  args = [ "-c" ''
    set -eu
    mkdir -p "$out/bin" "$out/share"
    printf '#!/bin/sh\necho synthetic closure\n' >"$out/bin/synth"
    chmod 555 "$out/bin/synth"
    for p in $deps; do echo "$p"; done >"$out/share/closure.txt"
  '' ];
}
