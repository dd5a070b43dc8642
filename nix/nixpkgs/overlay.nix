# armorred's nixpkgs overlay: rebuilds an image's package and its runtime
# dependencies with the maximum set of nixpkgs hardening flags.
#
#   pkgs = import nixpkgs { overlays = [ (import ./overlay.nix {
#     hardening = { cfi = true; lto = true; safestack = true; };
#     overrideArgs = { withPerl = false; withMail = false; };   # recipe nixpkgs_override
#     drop = [ "http_dav" ];                                     # recipe drop list
#     package = { attr = "nginx"; };   # or { file = ./pkg.nix; } / { file = "/abs/pkg.nix"; }
#   }) ]; };
#   pkgs.armorred.package        # the hardened image package
#   pkgs.armorred.shells.busybox # the shell layer (busybox-sh, busybox-coreutils too)
#   pkgs.armorred.nginx / redis  # the known images, tier hardening, no overrides
#   pkgs.armorred.hardenDep pkg  # base hardening for any derivation (and its inputs)
#
# It adds ONE attribute, `armorred`, and overrides nothing else: overriding
# `openssl`, `zlib`, … globally would also rebuild every build tool that links
# them (curl, python, perl, …). Instead the image package's runtime inputs are
# replaced by hardened copies (recursively, through buildInputs and
# propagatedBuildInputs: the host-platform inputs; nativeBuildInputs are build
# tools and stay as they are), minus inputs a package only uses while
# building (features.nix `buildOnly`, e.g. nginx's perl without withPerl).
# The copies are memoised: one table keyed by the original derivation's
# drvPath holds one hardened derivation per input package, shared by the
# image package, its metadata and the shell layer.
#
# A `package.file` is a callPackage-style function, the same interface as the
# offline set (nix/offline/README.md): its named arguments are taken from
# nixpkgs, plus `armorred` (this set's helpers: mkHardened, resolveFeatures,
# hardening, drop, stdenv, packageSet). It takes `stdenv` to be built with
# the tier's compiler, or builds through armorred.mkHardened; hardening names
# and flags are added with overrideAttrs, so builders that take no stdenv
# (buildGoModule, …) work in tiers without cfi/lto/safestack.
#
# Main package: the tier's hardening (flags.nix `main`); with cfi/lto/safestack
# it is built by clang with lld as the linker (llvmPackages.bintools links
# `ld` to lld and `ar` to llvm-ar, so LTO objects and archives work).
# Dependencies and the shell layer: flags.nix `base`, the default stdenv, the
# same derivations in every tier (like the offline set).
{ hardening ? { }
, overrideArgs ? { }
, drop ? [ ]
, package ? null
  # nixpkgs hardening names to leave out of / add to the maximum set
, hardeningExclude ? [ ]
, hardeningExtra ? [ ]
  # `.override` arguments applied to a known image package before the recipe's
  # nixpkgsOverride (which wins): a container needs no systemd notify support,
  # and withSystemd would put systemd's whole closure into the image.
, imageDefaults ? { redis = { withSystemd = false; }; }
  # runtime inputs that are never rebuilt: the C library and toolchain runtime
  # (from the stdenv), kernel headers, data-only packages, and systemd (far too
  # large to rebuild for an image; keep it out of images instead).
, skipDeps ? [
    "glibc" "glibc-locales" "libgcc" "gcc" "gcc-unwrapped" "linux-headers"
    "systemd" "systemd-minimal" "systemd-minimal-libs" "tzdata" "iana-etc"
    "nss-cacert" "cacert"
  ]
}:
final: prev:
let
  u = import ./util.nix;
  feat = import ./features.nix;
  offlineLib = import ../offline/lib.nix;
  inherit (builtins) elem filter map concatStringsSep isAttrs isList attrNames listToAttrs;

  platform = prev.stdenv.hostPlatform;

  # clang wrapped with LLVM's bintools (ld -> lld, ar -> llvm-ar); compiler-rt
  # (SafeStack runtime) comes with llvmPackages.clang's resource dir.
  clangLld = prev.llvmPackages.clang.override { bintools = prev.llvmPackages.bintools; };
  clangStdenv = prev.stdenvAdapters.overrideCC prev.stdenv clangLld;

  # Does the wrapped compiler drop the fortify3 name? The cc-wrapper reads the
  # unsupported names from the unwrapped compiler
  # (pkgs/build-support/cc-wrapper/default.nix, ccHardeningUnsupportedFlags).
  unsupportedOf = cc:
    let c = cc.cc or { }; in
    if c ? hardeningUnsupportedFlagsByTargetPlatform then c.hardeningUnsupportedFlagsByTargetPlatform platform
    else c.hardeningUnsupportedFlags or [ ];
  lacksFortify3 = cc: let un = unsupportedOf cc; in elem "fortify3" un || elem "fortify" un;

  flags0 = useClang: import ./flags.nix {
    inherit hardening;
    isx86_64 = platform.isx86_64 or false;
    isAarch64 = platform.isAarch64 or false;
    exclude = hardeningExclude;
    extra = hardeningExtra;
    mainLacksFortify3 = lacksFortify3 (if useClang then clangLld else prev.stdenv.cc);
    baseLacksFortify3 = lacksFortify3 prev.stdenv.cc;
  };
  flags = flags0 (flags0 false).main.useClang;
  tierStdenv = if flags.main.useClang then clangStdenv else prev.stdenv;

  # Appends flags to NIX_CFLAGS_COMPILE / NIX_CFLAGS_LINK: in `env` unless the
  # derivation sets the variable as a top-level attribute (mkDerivation
  # rejects the same name in both places).
  flagAttrs = set: old:
    let
      add = var: fl: acc:
        if fl == [ ] then acc
        else if old ? ${var} then
          acc // { ${var} = u.joinFlags [ (toString old.${var}) (concatStringsSep " " fl) ]; }
        else
          acc // {
            env = (acc.env or old.env or { }) // {
              ${var} = u.joinFlags [ (toString (old.env.${var} or "")) (concatStringsSep " " fl) ];
            };
          };
    in
    add "NIX_CFLAGS_LINK" set.ldflags (add "NIX_CFLAGS_COMPILE" set.cflags { });

  # The package's own hardeningDisable is kept (it records known breakage);
  # it wins over hardeningEnable in mkDerivation.
  hardenAttrs = set: old: {
    hardeningEnable = u.unique (u.toList (old.hardeningEnable or [ ]) ++ set.hardeningEnable);
    hardeningDisable = u.unique (u.toList (old.hardeningDisable or [ ]) ++ set.hardeningDisable);
  } // flagAttrs set old;

  flatten = xs: builtins.concatLists (map (x: if isList x then flatten x else [ x ]) xs);
  rebuildable = d: isAttrs d && d ? overrideAttrs && d ? drvPath && !(elem (u.nameOf d) skipDeps);

  # The runtime (host-platform) inputs of a derivation that are rebuilt.
  runtimeInputs = attrs:
    let buildOnly = (feat.for (u.nameOf attrs)).buildOnly attrs;
    in filter (d: rebuildable d && !(elem (u.nameOf d) buildOnly))
      (flatten (u.toList (attrs.buildInputs or [ ]) ++ u.toList (attrs.propagatedBuildInputs or [ ])));

  # One hardened copy per input package: `memoFor roots` is a table from the
  # original drvPath to the hardened derivation, over every runtime input
  # reachable from `roots`; the copies look their own inputs up in the same
  # table. (Nix evaluates each table entry once.)
  keyOf = d: builtins.unsafeDiscardStringContext d.drvPath;
  memoFor = roots:
    let
      item = d: { key = keyOf d; drv = d; };
      closure = builtins.genericClosure {
        startSet = map item (filter rebuildable roots);
        operator = i: map item (runtimeInputs i.drv);
      };
      table = listToAttrs (map (i: { name = i.key; value = hardenOne table i.drv; }) closure);
    in
    table;
  hardenOne = table: d: d.overrideAttrs (old: hardenAttrs flags.base old // rewriteInputs table old // {
    passthru = (old.passthru or { }) // { armorredHardening = "base"; };
  });
  # an input's hardened copy, with the same output selected (`libxml2.dev`)
  lookup = table: d:
    if isList d then map (lookup table) d
    else if !(rebuildable d) || !(table ? ${keyOf d}) then d
    else let h = table.${keyOf d}; in if d.outputSpecified or false then h.${d.outputName} else h;
  rewriteInputs = table: old:
    u.optionalAttrs (old ? buildInputs) { buildInputs = map (lookup table) (u.toList old.buildInputs); }
    // u.optionalAttrs (old ? propagatedBuildInputs) {
      propagatedBuildInputs = map (lookup table) (u.toList old.propagatedBuildInputs);
    };

  # Base hardening for any derivation and its runtime inputs (a table of its own).
  hardenDep = d: if isList d then map hardenDep d else lookup (memoFor [ d ]) d;

  # Source fixes a tier needs, ported from the offline set (measured there
  # with Redis 7.0 / clang 14; see nix/offline/pkgs/redis.nix).
  fixes = {
    # CFI (cfi-icall): K&R-style `f()` definitions get a different CFI type id
    # than the `(void)` pointer types they are called through (SIGILL).
    redis = old: u.optionalAttrs flags.tier.cfi {
      postPatch = (old.postPatch or "") + ''
        sed -i -E 's/^([A-Za-z_][A-Za-z0-9_ \t\*]*[ \t\*])([A-Za-z_][A-Za-z0-9_]*)\(\)([ \t]*(\{|;)?[ \t]*)$/\1\2(void)\3/' \
          src/*.c src/*.h
      '';
    };
  };
  layouts = import ./layout.nix { inherit (flags.tier) cfi; };

  # nixpkgs_override values that name packages: nginx `modules = [ "rtmp" ]`
  # (TOML cannot hold a derivation) are looked up in nginxModules.
  resolveOverride = pname: args:
    args // u.optionalAttrs (pname == "nginx" && args ? modules) {
      modules = map
        (m: if builtins.isString m then prev.nginxModules.${m} or (throw "armorred: nginx: nixpkgs_override modules: nixpkgs has no nginxModules.${m}") else m)
        (u.toList args.modules);
    };

  # The tier's hardening for an image package: clang+lld stdenv when asked,
  # recipe overrides and drop list, runtime layout, hardened runtime inputs.
  #   preApplied: a package.file already called with the stdenv and overrides
  #   extraRoots: other packages whose inputs share the memo table (shells)
  hardenWith = { drop ? [ ], overrideArgs ? { }, preApplied ? false, what ? null, extraRoots ? [ ] }: pkg:
    let
      pname = u.nameOf pkg;
      fam = feat.for pname;
      known = fam.known pkg;
      unknown = filter (n: !(elem n known)) drop;
      drop' =
        if unknown != [ ] then
          throw "armorred: ${pname}: unknown feature(s) in drop for the nixpkgs set: ${concatStringsSep ", " unknown} (known: ${if known == [ ] then "none" else concatStringsSep ", " known})"
        else if pname == "busybox" && flags.main.useClang then
          throw "armorred: busybox cannot be built with cfi/lto/safestack (Kbuild partial links); use it as the shell layer (spec.shell/coreutils) or a tier without them"
        else drop;
      overrideFormals = if pkg ? override then u.fnArgs pkg.override else { };
      takesStdenv = overrideFormals ? stdenv || fam.forwardsArgs;
      label = if what == null then "nixpkgs' ${pname}" else what;
      stdenvArg =
        if preApplied || !flags.main.useClang then { }
        else if takesStdenv then { stdenv = clangStdenv; }
        else throw "armorred: ${label} takes no `stdenv` argument (its .override accepts: ${concatStringsSep ", " (attrNames overrideFormals)}), so this tier's clang + lld (cfi/lto/safestack) cannot be applied; use a tier without them";
      args =
        if preApplied then { }
        else (imageDefaults.${pname} or { }) // fam.args drop' pkg // resolveOverride pname overrideArgs // stdenvArg;
      overridden =
        if args == { } then pkg
        else if pkg ? override then pkg.override args
        else throw "armorred: ${label} has no .override (it was not made by callPackage), so the clang stdenv / nixpkgsOverride cannot be applied";
      dropped = overridden.overrideAttrs (old: fam.attrs drop' old);
      fixed = dropped.overrideAttrs (old: (fixes.${pname} or (_: { })) old);
      laidOut = fixed.overrideAttrs (old: (layouts.${pname} or (_: { })) old);
      table = memoFor (runtimeInputs laidOut ++ extraRoots);
    in
    # the checks in drop' must fail even when nothing else looks at drop
    builtins.seq (builtins.deepSeq drop' null) (laidOut.overrideAttrs (old:
      let
        declared = old.passthru or { } ? features;
        enabled = if declared then old.passthru.enabledFeatures or [ ] else fam.features old;
        all = if declared then old.passthru.features else u.unique (fam.features pkg ++ enabled);
      in
      hardenAttrs flags.main old // rewriteInputs table old // {
        passthru = (old.passthru or { }) // {
          armorred = {
            tier = flags.tier;
            inherit (flags.main) hardeningEnable hardeningDisable cflags ldflags names;
            inherit (flags) cetMarkedNotEnforced;
            stdenv = if flags.main.useClang then "clang+lld" else "default";
            features = all;
            enabledFeatures = enabled;
            droppedFeatures = filter (f: !(elem f enabled)) all;
            unavailableFeatures = if declared then old.passthru.unavailableFeatures or [ ] else fam.unavailable;
            # the package's own test suite runs on the hardened build (doCheck)
            testSuite = old.doCheck or false;
            # third-party modules built in (nginx --add-module), for labels and SBOM
            thirdPartyModules = map
              (m: { name = m.name or "unnamed"; src = toString (m.src or ""); licenses = map (l: l.spdxId or l.shortName or "unknown") (u.toList (m.meta.license or [ ])); })
              (u.toList (old.passthru.modules or [ ]));
            # the hardened runtime inputs (direct ones; libc comes from the stdenv)
            dependencies = map (lookup table) (runtimeInputs old);
            # every rebuilt input package, once (original drvPath -> copy);
            # the shell layer looks its packages up here too
            memo = table;
          };
        };
      }));

  # `armorred` as a package.file sees it (the offline set passes its own
  # set under the same name; see nix/offline/README.md)
  helpers = {
    packageSet = "nixpkgs";
    stdenv = tierStdenv;
    hardening = flags.tier;
    inherit drop;
    resolveFeatures = args: offlineLib.resolveFeatures ({ inherit drop; } // args);
    # the offline set's mkHardened attributes on the tier's stdenv: the
    # cc-wrapper adds the flags, so $CFLAGS/$LDFLAGS stay empty; licenses go
    # to meta.license, deps to buildInputs, features to passthru
    mkHardened = attrs:
      let
        phase = name: body: "runHook pre${name}\n${body}\nrunHook post${name}\n";
        own = [ "licenses" "features" "enabledFeatures" "droppedFeatures" "unavailableFeatures" "deps" "hardening" "buildPhase" "installPhase" ];
      in
      tierStdenv.mkDerivation (removeAttrs attrs own
        // u.optionalAttrs (attrs ? buildPhase) { buildPhase = phase "Build" attrs.buildPhase; }
        // u.optionalAttrs (attrs ? installPhase) { installPhase = phase "Install" attrs.installPhase; }
        // {
          CFLAGS = "";
          LDFLAGS = "";
          buildInputs = u.toList (attrs.buildInputs or [ ]) ++ u.toList (attrs.deps or [ ]);
          passthru = (attrs.passthru or { })
            // u.optionalAttrs (attrs ? features) {
              features = attrs.features;
              enabledFeatures = attrs.enabledFeatures or attrs.features;
              droppedFeatures = attrs.droppedFeatures or [ ];
              unavailableFeatures = attrs.unavailableFeatures or [ ];
            };
          meta = (attrs.meta or { }) // u.optionalAttrs (attrs ? licenses) {
            license = map (id: { spdxId = id; shortName = id; }) attrs.licenses;
          };
        });
  };

  # A package.file: callPackage-style, with `armorred` and, when it takes
  # `stdenv`, the tier's stdenv.
  callFile = file:
    let
      name = toString file;
      # imported as given: a path, or an absolute string (`/. + s` would drop a
      # store path's context, such as "${self}/pkg.nix" in a flake)
      f = import file;
      formals = u.fnArgs f;
      provided = prev // { armorred = helpers; } // overrideArgs;
      missing = filter (n: !formals.${n} && !(provided ? ${n})) (attrNames formals);
      explicit = u.optionalAttrs (formals ? armorred) { armorred = helpers; }
        // u.optionalAttrs (formals ? stdenv) { stdenv = tierStdenv; }
        // overrideArgs;
    in
    if !(builtins.isFunction f || (isAttrs f && f ? __functor)) || formals == { } then
      throw "armorred: package.file ${name} must be a function of named arguments, such as `{ stdenv, fetchurl }: stdenv.mkDerivation { … }` or `{ armorred }: armorred.mkHardened { … }`"
    else if missing != [ ] then
      throw "armorred: package.file ${name} needs ${concatStringsSep ", " missing}, which neither nixpkgs nor armorred provides (and the recipe's nixpkgs_override does not set)"
    else if flags.main.useClang && !(formals ? stdenv) && !(formals ? armorred) then
      throw "armorred: package.file ${name} takes neither `stdenv` nor `armorred`, so this tier's clang + lld (cfi/lto/safestack) cannot be applied; take `stdenv` (and build with stdenv.mkDerivation) or `armorred` (armorred.mkHardened), or use a tier without cfi/lto/safestack"
    else prev.callPackage file explicit;

  resolve = p:
    if p ? attr then { pkg = u.getAttrPath p.attr prev; preApplied = false; what = null; }
    else if p ? file then
      (if !(builtins.isPath p.file) && builtins.substring 0 1 (toString p.file) != "/" then
        throw "armorred: package.file must be an absolute path, got '${toString p.file}'"
      # pure evaluation (flakes) has no currentSystem and reads no path
      # outside the store: a flake passes a path value, e.g. file = ./pkg.nix
      else if !(builtins ? currentSystem) && builtins.isString p.file && builtins.getContext p.file == { }
        && !(u.hasPrefix builtins.storeDir p.file) then
        throw "armorred: package.file '${p.file}' is a string naming a path outside the store, which pure evaluation (flakes) cannot read; pass a path value instead (file = ./pkg.nix)"
      else { pkg = callFile p.file; preApplied = true; what = "package.file ${toString p.file}"; })
    else throw "armorred: spec.package needs `attr` or `file`";

  busyboxSh = ''
    CONFIG_BUSYBOX y
    CONFIG_SHELL_ASH y
    CONFIG_ASH y
    CONFIG_SH_IS_ASH y
    CONFIG_ASH_BASH_COMPAT y
    CONFIG_ASH_JOB_CONTROL y
    CONFIG_ASH_ALIAS y
    CONFIG_ASH_ECHO y
    CONFIG_ASH_PRINTF y
    CONFIG_ASH_TEST y
    CONFIG_ASH_GETOPTS y
    CONFIG_ASH_CMDCMD y
    CONFIG_FEATURE_SH_MATH y
    CONFIG_FEATURE_EDITING y
  '';
  busyboxNoShell = ''
    CONFIG_ASH n
    CONFIG_HUSH n
    CONFIG_SHELL_ASH n
    CONFIG_SHELL_HUSH n
    CONFIG_SH_IS_ASH n
    CONFIG_SH_IS_NONE y
    CONFIG_BASH_IS_ASH n
    CONFIG_BASH_IS_NONE y
  '';
  renamed = pname: d: d.overrideAttrs (_: { inherit pname; });

  # the shell layer's packages before hardening; they are roots of the same
  # memo table as the image package
  shellBases = {
    busybox = prev.busybox;
    busybox-sh = renamed "busybox-sh" (prev.busybox.override { enableMinimal = true; extraConfig = busyboxSh; });
    busybox-coreutils = renamed "busybox-coreutils" (prev.busybox.override { extraConfig = busyboxNoShell; });
  };
  shellRoots = builtins.attrValues shellBases;

  resolved = if package == null then null else resolve package;
  imagePackage =
    if resolved == null then null
    else hardenWith {
      inherit drop overrideArgs;
      inherit (resolved) preApplied what;
      extraRoots = shellRoots;
    } resolved.pkg;
  sharedTable = if imagePackage == null then memoFor shellRoots else imagePackage.armorred.memo;
in
{
  armorred = {
    inherit flags clangStdenv hardenDep hardenWith helpers;
    inherit (flags) knownHardeningFlags;
    # the stdenv the image package is built with in this tier
    stdenv = tierStdenv;
    harden = hardenWith { };
    nginx = hardenWith { } prev.nginx;
    redis = hardenWith { } prev.redis;
    package = imagePackage;
    # the shell layer, base hardening, from the image package's table
    shells = builtins.mapAttrs (_: lookup sharedTable) shellBases;
    libc = prev.stdenv.cc.libc or null;
  };
}
