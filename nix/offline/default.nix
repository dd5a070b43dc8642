# armorred's offline package set: real upstream software from pinned upstream
# tarballs, built with the host's clang 14 / lld / compiler-rt (no nixpkgs).
# Needs Nix with `sandbox = false` (builders call /usr/bin/clang etc.).
#
#   import ./nix/offline {
#     sourceDir   = "/abs/dir";  # filled by scripts/fetch-sources.sh (required)
#     toolchainId = "clang-14.0.6"; # host compiler id; part of every derivation
#     hardening   = { cfi = true; lto = true; safestack = true; }; # the tier
#     drop        = [ "mail" ];  # features removed from the MAIN package only
#     upstreamTests = "ci";      # or "full": which upstream test suites the
#                                # builds run (./upstream-tests.nix)
#   }
#
# Dependencies (glibc, zlib, pcre2, openssl, perl, libxml2, libxslt, libgd,
# GeoIP, the busybox shell) are built with
# the BASE hardening whatever the tier, so their store paths (and image
# layers) are identical between tiers. Only the main packages (nginx, redis,
# busybox-as-main, `package.file` packages) take the tier's hardening/drop.
{ sourceDir ? null
  # false only in tests that show what a Debian security patch changes
, debianPatches ? true
, toolchainId ? "clang-14"
, hardening ? { }
, drop ? [ ]
, upstreamTests ? "ci"
}:
let
  lib = import ./lib.nix;
  sources = import ./sources.nix { inherit sourceDir debianPatches; };
  glibc = import ./glibc.nix { };
  hardeningLib = import ./hardening.nix { inherit glibc; };
  tierHardening = hardeningLib.normalize hardening;
  tests = import ./upstream-tests.nix { mode = upstreamTests; };

  mkHardenedWith = h: import ./mk-hardened.nix {
    inherit glibc hardeningLib toolchainId;
    defaultHardening = h;
  };
  mkHardenedBase = mkHardenedWith hardeningLib.base;
  mkHardened = mkHardenedWith hardening;

  # ---- tier-independent dependencies (base hardening) ----------------------
  base = rec {
    inherit glibc;
    zlib = import ./pkgs/zlib.nix { mkHardened = mkHardenedBase; inherit sources tests; hardening = hardeningLib.base; };
    pcre2 = import ./pkgs/pcre2.nix { mkHardened = mkHardenedBase; inherit sources tests; hardening = hardeningLib.base; };
    openssl = import ./pkgs/openssl.nix { mkHardened = mkHardenedBase; inherit sources tests; hardening = hardeningLib.base; };
    # for nginx's dynamic modules (perl, xslt, image_filter, geoip)
    perl = import ./pkgs/perl.nix { mkHardened = mkHardenedBase; inherit sources hardeningLib tests; hardening = hardeningLib.base; };
    libxml2 = import ./pkgs/libxml2.nix { mkHardened = mkHardenedBase; inherit sources zlib tests; hardening = hardeningLib.base; };
    libxslt = import ./pkgs/libxslt.nix { mkHardened = mkHardenedBase; inherit sources libxml2; hardening = hardeningLib.base; };
    geoip = import ./pkgs/geoip.nix { mkHardened = mkHardenedBase; inherit sources; hardening = hardeningLib.base; };
    libpng = import ./pkgs/libpng.nix { mkHardened = mkHardenedBase; inherit sources zlib; hardening = hardeningLib.base; };
    libjpeg = import ./pkgs/libjpeg-turbo.nix { mkHardened = mkHardenedBase; inherit sources; hardening = hardeningLib.base; };
    libgd = import ./pkgs/libgd.nix { mkHardened = mkHardenedBase; inherit sources zlib libpng libjpeg; hardening = hardeningLib.base; };
    busyboxWith = variant: import ./pkgs/busybox.nix {
      mkHardened = mkHardenedBase; inherit sources lib variant tests;
      hardening = hardeningLib.base; drop = [ ];
    };
    # sh + coreutils applets / only sh (ash) / coreutils applets without a shell
    busybox = busyboxWith "full";
    busybox-sh = busyboxWith "sh";
    busybox-coreutils = busyboxWith "coreutils";
  };

  # ---- main packages (tier hardening + drop) --------------------------------
  nginx = import ./pkgs/nginx.nix {
    inherit mkHardened sources lib hardening drop;
    inherit (base) zlib pcre2 openssl perl libxml2 libxslt libgd geoip;
  };
  redis = import ./pkgs/redis.nix {
    inherit mkHardened sources lib hardening drop tests;
    inherit (base) openssl;
  };
  # the entrypoint compatibility programs, with the tier's hardening like the
  # main package (recipes' `[entrypoint_compat]`)
  entrypoint = import ./pkgs/entrypoint.nix { inherit mkHardened hardening; };
  # busybox as the MAIN package (tier-hardened); the shell layer is base.busybox
  busybox = import ./pkgs/busybox.nix {
    inherit mkHardened sources lib hardening drop tests;
    variant = "full";
  };

  # the tier's resolved flags for an executable (what a main package gets)
  hardeningFlags = hardeningLib.flagsFor { inherit hardening; kind = "exe"; };

  set = {
    inherit glibc nginx redis busybox entrypoint;
    inherit (base) zlib pcre2 openssl perl libxml2 libxslt geoip libpng libjpeg libgd;

    # what `package.file` expressions get (as `armorred`), see README.md
    inherit base lib sources toolchainId drop mkHardened mkHardenedBase hardeningLib hardeningFlags;
    # the upstream-test runner (mode, `run`), for `package.file` expressions
    upstreamTests = tests;
    hardening = tierHardening;
    deps = { inherit glibc; inherit (base) zlib pcre2 openssl; };
    inherit (hardeningLib) flagsFor;
    resolveFeatures = args: lib.resolveFeatures ({ inherit drop; } // args);
  };

  # `package.file` is called like nixpkgs' callPackage: its named arguments
  # come from this set's packages and `armorred` (the whole set, with
  # packageSet = "offline"); the nixpkgs set offers the same `armorred`
  # helpers (mkHardened, resolveFeatures, hardening, drop), so a file written
  # against them builds in both sets.
  packageNames = [
    "glibc" "nginx" "redis" "busybox" "zlib" "pcre2" "openssl" "perl" "libxml2"
    "libxslt" "geoip" "libpng" "libjpeg" "libgd"
  ];
  callPackage = file: args:
    let
      name = toString file;
      f = import file;
      formals = if builtins.isFunction f then builtins.functionArgs f else { };
      provided = builtins.listToAttrs (map (n: { name = n; value = set.${n}; }) packageNames)
        // { armorred = set // { packageSet = "offline"; inherit callPackage; }; }
        // args;
      missing = builtins.filter (n: !formals.${n} && !(provided ? ${n})) (builtins.attrNames formals);
    in
    if formals == { } then
      throw "armorred: package.file ${name} must be a function of named arguments, such as `{ armorred }: armorred.mkHardened { … }`"
    else if missing != [ ] then
      throw "armorred: package.file ${name} needs ${builtins.concatStringsSep ", " missing}, which the offline set does not provide (it provides: armorred, ${builtins.concatStringsSep ", " packageNames}); `stdenv`, `lib` and the other nixpkgs names exist only with --package-set nixpkgs"
    else f (builtins.intersectAttrs formals provided);
in
set // { inherit callPackage; }
