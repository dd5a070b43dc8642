# The `packageSet = "nixpkgs"` branch of nix/build.nix: the same result
# attributes (package, shell, meta) as the offline set, built from the nixpkgs
# pinned in flake.lock with ./overlay.nix.
#
#   spec     the decoded specJson (see nix/build.nix)
#   nixpkgs  a nixpkgs source tree to use instead of the pin (tests pass a
#            stand-in, nix/tests/fake-nixpkgs); null = the flake.lock pin
{ spec, nixpkgs ? null, system ? builtins.currentSystem }:
let
  pin = import ./pin.nix { };
  minNix = "2.18";
  src =
    if nixpkgs != null then nixpkgs
    else if builtins.compareVersions builtins.nixVersion minNix < 0 then
      throw "armorred: package set nixpkgs needs Nix >= ${minNix} (the pinned nixpkgs ${pin.shortRev}, nixos-25.11, requires it in lib/minver.nix); this is Nix ${builtins.nixVersion}. Use packageSet \"offline\" here, or a newer Nix."
    else pin.src;

  wantShell = spec.shell or false;
  wantCoreutils = spec.coreutils or false;

  pkgs = import src {
    localSystem = { inherit system; };
    config = { };
    overlays = [
      (import ./overlay.nix {
        hardening = spec.hardening or { };
        overrideArgs = spec.nixpkgsOverride or { };
        drop = spec.drop or [ ];
        package = spec.package or (throw "armorred: spec.package is required ({\"attr\": ...} or {\"file\": ...})");
      })
    ];
  };
  a = pkgs.armorred;
  package = a.package;
  info = package.armorred;

  shell =
    if wantShell && wantCoreutils then a.shells.busybox
    else if wantShell then a.shells.busybox-sh
    else if wantCoreutils then a.shells.busybox-coreutils
    else null;

  nameOf = d: d.pname or (builtins.parseDrvName d.name).name;
  unique = builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];
  # meta.license of the derivation (one licence or a list; nginx's adds its
  # third-party modules' licences), as SPDX ids
  licensesOf = d:
    let ls = d.meta.license or [ ];
    in unique (map (l: if builtins.isAttrs l then l.spdxId or l.shortName or "unknown" else toString l)
      (if builtins.isList ls then ls else [ ls ]));
  depMeta = d: { name = nameOf d; version = d.version or ""; licenses = licensesOf d; };
  cc = a.stdenv.cc;

  meta = {
    name = nameOf package;
    # what was built: the derivation's version and meta.license, not the recipe's
    version = package.version or "";
    hardening = info.names;
    features = info.features;
    enabledFeatures = info.enabledFeatures;
    droppedFeatures = info.droppedFeatures;
    unavailableFeatures = info.unavailableFeatures;
    cflags = builtins.concatStringsSep " " info.cflags;
    ldflags = builtins.concatStringsSep " " info.ldflags;
    licenses = licensesOf package;
    # runtime library dependencies of the main package (all base-hardened) and libc
    # and the third-party modules built into it (nginx --add-module)
    dependencies = map depMeta (info.dependencies ++ (if a.libc == null then [ ] else [ a.libc ]))
      ++ map (m: { name = "nginx-module-${m.name}"; version = ""; inherit (m) licenses; }) info.thirdPartyModules;
    thirdPartyModules = map (m: m.name) info.thirdPartyModules;
    # the package's own test suite ran on the hardened build (doCheck)
    testSuite = info.testSuite;
    # the compiler comes from the pin, not from the host: spec.toolchainId is not used
    toolchainId = "${nameOf cc}-${cc.version or "unknown"}";
    packageSet = "nixpkgs";
    # what nixpkgs was imported for (spec.system, else the evaluating machine's)
    system = pkgs.stdenv.hostPlatform.system;
    shell = if shell == null then null else nameOf shell;
    nixpkgs = if nixpkgs == null then { inherit (pin) rev narHash; } else { rev = null; narHash = null; };
    nixpkgsHardening = {
      enable = info.hardeningEnable;
      disable = info.hardeningDisable;
      stdenv = info.stdenv;
      # -fcf-protection=full is compiled in, but nixpkgs' glibc does not
      # enforce CET, so `hardening` does not name it
      cetMarkedNotEnforced = info.cetMarkedNotEnforced.main;
    };
  };
in
{ inherit package meta; } // (if shell == null then { } else { inherit shell; })
  # The entrypoint compatibility programs are built by the offline set only
  # (host clang, nix/offline/entrypoint); say so rather than fail on a
  # missing attribute.
  // (if spec.entrypoint or false then {
    entrypoint = throw "armorred: the entrypoint compatibility programs (recipe `[entrypoint_compat]`) are built by the offline package set only; use --package-set offline or a tier without entrypoint_compat";
  } else { })
