# armorred's nixpkgs overlay: rebuilds an image's package and its runtime
# dependencies with the maximum set of nixpkgs hardening flags.
#
#   pkgs = import nixpkgs { overlays = [ (import ./overlay.nix {
#     hardening = { cfi = true; lto = true; safestack = true; };
#     overrideArgs = { withPerl = false; withMail = false; };   # recipe nixpkgs_override
#     drop = [ "http_dav" ];                                     # recipe drop list
#     package = { attr = "nginx"; };                             # or { file = "/abs/pkg.nix"; }
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
# propagatedBuildInputs), which rebuilds exactly the runtime closure.
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
  inherit (builtins) elem filter map concatStringsSep isAttrs isList;

  platform = prev.stdenv.hostPlatform;
  flags = import ./flags.nix {
    inherit hardening;
    isx86_64 = platform.isx86_64 or false;
    isAarch64 = platform.isAarch64 or false;
    exclude = hardeningExclude;
    extra = hardeningExtra;
  };

  # clang wrapped with LLVM's bintools (ld -> lld, ar -> llvm-ar); compiler-rt
  # (SafeStack runtime) comes with llvmPackages.clang's resource dir.
  clangLld = prev.llvmPackages.clang.override { bintools = prev.llvmPackages.bintools; };
  clangStdenv = prev.stdenvAdapters.overrideCC prev.stdenv clangLld;

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
  rebuildable = d: isAttrs d && d ? overrideAttrs && !(elem (u.nameOf d) skipDeps);

  rewriteInputs = old:
    u.optionalAttrs (old ? buildInputs) { buildInputs = map hardenDep (u.toList old.buildInputs); }
    // u.optionalAttrs (old ? propagatedBuildInputs) {
      propagatedBuildInputs = map hardenDep (u.toList old.propagatedBuildInputs);
    };

  # Base hardening for a runtime dependency and, recursively, its own runtime
  # inputs. Keeps a selected output (e.g. `libxml2.dev`) selected.
  hardenDep = d:
    if isList d then map hardenDep d
    else if !(rebuildable d) || (d.armorredHardening or null) == "base" then d
    else
      let
        h = d.overrideAttrs (old: hardenAttrs flags.base old // rewriteInputs old // {
          passthru = (old.passthru or { }) // { armorredHardening = "base"; };
        });
      in
      if d.outputSpecified or false then h.${d.outputName} else h;

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

  # The tier's hardening for an image package: clang+lld stdenv when asked,
  # recipe overrides and drop list, hardened runtime inputs.
  hardenWith = { drop ? [ ], overrideArgs ? { } }: pkg:
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
      args = (imageDefaults.${pname} or { })
        // fam.args drop'
        // overrideArgs
        // u.optionalAttrs flags.main.useClang { stdenv = clangStdenv; };
      overridden =
        if args == { } then pkg
        else if pkg ? override then pkg.override args
        else throw "armorred: ${pname} has no .override (it was not made by callPackage), so the clang stdenv / nixpkgsOverride cannot be applied";
      dropped = overridden.overrideAttrs (old: fam.attrs drop' old);
      fixed = dropped.overrideAttrs (old: (fixes.${pname} or (_: { })) old);
    in
    # the checks in drop' must fail even when nothing else looks at drop
    builtins.seq (builtins.deepSeq drop' null) (fixed.overrideAttrs (old:
      let
        enabled = fam.features old;
        all = u.unique (fam.features pkg ++ enabled);
        direct = filter rebuildable (flatten (u.toList (old.buildInputs or [ ]) ++ u.toList (old.propagatedBuildInputs or [ ])));
      in
      hardenAttrs flags.main old // rewriteInputs old // {
        passthru = (old.passthru or { }) // {
          armorred = {
            tier = flags.tier;
            inherit (flags.main) hardeningEnable hardeningDisable cflags ldflags names;
            stdenv = if flags.main.useClang then "clang+lld" else "default";
            features = all;
            enabledFeatures = enabled;
            droppedFeatures = filter (f: !(elem f enabled)) all;
            unavailableFeatures = fam.unavailable;
            # the hardened runtime inputs (direct ones; libc comes from the stdenv)
            dependencies = map hardenDep direct;
          };
        };
      }));

  resolve = p:
    if p ? attr then u.getAttrPath p.attr prev
    else if p ? file then
      (if builtins.substring 0 1 (toString p.file) != "/" then
        throw "armorred: package.file must be an absolute path, got '${toString p.file}'"
      # a callPackage-style file ({ stdenv, fetchurl, ... }: stdenv.mkDerivation …)
      else prev.callPackage (/. + p.file) { })
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
in
{
  armorred = {
    inherit flags clangStdenv hardenDep hardenWith;
    inherit (flags) knownHardeningFlags;
    # the stdenv the image package is built with in this tier
    stdenv = if flags.main.useClang then clangStdenv else prev.stdenv;
    harden = hardenWith { };
    nginx = hardenWith { } prev.nginx;
    redis = hardenWith { } prev.redis;
    package = if package == null then null else hardenWith { inherit drop overrideArgs; } (resolve package);
    # the shell layer, base hardening (busybox: shell + coreutils)
    shells = {
      busybox = hardenDep prev.busybox;
      busybox-sh = renamed "busybox-sh"
        (hardenDep (prev.busybox.override { enableMinimal = true; extraConfig = busyboxSh; }));
      busybox-coreutils = renamed "busybox-coreutils"
        (hardenDep (prev.busybox.override { extraConfig = busyboxNoShell; }));
    };
    libc = prev.stdenv.cc.libc or null;
  };
}
