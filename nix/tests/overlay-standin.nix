# Evaluates nix/nixpkgs/overlay.nix against the stand-in nixpkgs
# (./fake-nixpkgs) and returns a JSON-able summary, for tests/it/nix_exprs.rs:
#
#   nix-instantiate --eval --strict --json nix/tests/overlay-standin.nix \
#     --argstr casesJson '{"nginx-locked": {"package": {"attr": "nginx"},
#        "hardening": {...}, "overrideArgs": {...}, "drop": [...]}, ...}'
#
# Each case is one overlay instantiation (the arguments nix/nixpkgs/build.nix
# passes for a recipe tier); the summary has the image package, its metadata
# and the three shell variants, each with every (recursive) runtime input.
{ casesJson ? "{}", system ? "x86_64-linux" }:
let
  inherit (builtins) isAttrs isList concatLists map mapAttrs;
  fake = import ./fake-nixpkgs;
  overlay = import ../nixpkgs/overlay.nix;
  cases = builtins.fromJSON casesJson;

  flatten = xs: concatLists (map (x: if isList x then flatten x else [ x ]) xs);
  flagVar = p: var:
    let v = p.env.${var} or p.${var} or null;
    in if v == null then null else toString v;

  summary = p:
    if !(isAttrs p) then { notADerivation = toString p; }
    else {
      inherit (p) name outputName;
      pname = p.pname or null;
      hardeningEnable = p.hardeningEnable or [ ];
      hardeningDisable = p.hardeningDisable or [ ];
      NIX_CFLAGS_COMPILE = flagVar p "NIX_CFLAGS_COMPILE";
      NIX_CFLAGS_LINK = flagVar p "NIX_CFLAGS_LINK";
      cflagsInEnv = p ? env && p.env ? NIX_CFLAGS_COMPILE;
      cflagsTopLevel = p ? NIX_CFLAGS_COMPILE;
      stdenv = p.stdenvName;
      cc = p.ccName;
      bintools = p.bintoolsName;
      args = p.standinArgs or { };
      configureFlags = p.configureFlags or [ ];
      makeFlags = p.makeFlags or [ ];
      postPatch = p.postPatch or "";
      postInstall = p.postInstall or "";
      doCheck = p.doCheck or false;
      checkPhase = p.checkPhase or "";
      version = p.version or null;
      licenses = map (l: l.spdxId) (if isList (p.meta.license or [ ]) then p.meta.license or [ ] else [ p.meta.license ]);
      # what the stand-in's cc-wrapper model puts on a compile / a link
      ccCommand = p.ccCommand or null;
      configurePhase = p.configurePhase or "";
      armorredHardening = p.armorredHardening or null;
      inputs = map summary (flatten ((p.buildInputs or [ ]) ++ (p.propagatedBuildInputs or [ ])));
    };

  run = args:
    let
      a = (fake { localSystem = { inherit system; }; overlays = [ (overlay args) ]; }).armorred;
      info = a.package.armorred;
    in
    {
      package = summary a.package;
      info = {
        inherit (info) tier hardeningEnable hardeningDisable cflags ldflags names stdenv
          features enabledFeatures droppedFeatures unavailableFeatures;
        # null / empty where an overlay does not report them (the tests then
        # fail on the value, not on the evaluation)
        testSuite = info.testSuite or null;
        thirdPartyModules = info.thirdPartyModules or [ ];
        cetMarkedNotEnforced = info.cetMarkedNotEnforced or null;
        memoKeys = builtins.attrNames (info.memo or { });
        dependencies = map summary info.dependencies;
      };
      shells = mapAttrs (_: summary) a.shells;
      knownHardeningFlags = a.knownHardeningFlags;
      outPlaceholder = builtins.placeholder "out";
    };
in
mapAttrs (_: run) cases
