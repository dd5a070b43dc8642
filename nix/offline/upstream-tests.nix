# Upstream test suites, run on the build that ships.
#
# builder.sh has no check phase (adding one would change every derivation of
# the set), so a package runs its suites at the end of its own `postInstall`:
# after `make install`, in the build tree that produced $out, before the
# fixup. Each suite goes through ./upstream_tests.py, which keeps the output in
# the build log, fails the build naming the suite and the failing tests, and
# appends the counts to $out/nix-support/armorred-tests.json (schema
# armorred.upstream-tests/v1), where `armorred inspect` and the tests read
# them from the image's closure.
#
# mode "ci" (the default) runs each package's CI subset, fast enough for CI's
# budget; "full" runs every suite whole (spec.upstreamTests = "full", i.e.
# `armorred build --upstream-tests full`). The mode is part of every
# derivation that runs a suite, so a full run is its own build.
{ mode ? "ci" }:
let
  lib = import ./lib.nix;
  modes = [ "ci" "full" ];
  shq = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
  flags = name: attrs: lib.concatMap (k: [ name (shq "${k}=${attrs.${k}}") ]) (builtins.attrNames attrs);
in
if !(builtins.elem mode modes) then
  throw "armorred: upstreamTests must be one of ${builtins.concatStringsSep ", " modes}, got '${toString mode}'"
else rec {
  inherit mode;
  full = mode == "full";
  script = ./upstream_tests.py;

  # A shell command (for a phase string) that runs `command` with `sh -c` in
  # the current directory and records it.
  #   package, version, suite   what ran (suite: upstream's own name for it)
  #   scope                     "full", or what the CI subset is
  #   parser                    how to read the suite's report (see the script)
  #   skipTags                  { tag = "reason"; } left out on purpose
  #   allowFail                 { test = "reason"; } failures known to come
  #                             from the build machine, not the build
  run = { package, version, suite, scope, parser, command, skipTags ? { }, allowFail ? { } }:
    builtins.concatStringsSep " " ([
      "python3"
      "${script}"
      "--record"
      "\"$out/nix-support/armorred-tests.json\""
      "--package"
      (shq package)
      "--version"
      (shq version)
      "--suite"
      (shq suite)
      "--mode"
      mode
      "--scope"
      (shq scope)
      "--parser"
      parser
      "--display"
      (shq command)
    ] ++ flags "--skip-tag" skipTags ++ flags "--allow-fail" allowFail ++ [
      "--"
      "sh"
      "-c"
      (shq command)
    ]);
}
