# The hardening of the nixpkgs package set, as plain data (no nixpkgs needed).
#
#   import ./flags.nix { hardening = { cfi; lto; safestack; }; isx86_64; isAarch64; }
#   -> { base; main; tier; knownHardeningFlags; }
#
# `base` is used for the runtime dependencies and the busybox shell layer (the
# same in every tier, like the offline set's BASE flags); `main` for the
# image's package (the tier's hardening).  Each is
#   { hardeningEnable; hardeningDisable;  # nixpkgs hardening flag NAMES
#     cflags; ldflags;                    # extra NIX_CFLAGS_COMPILE / NIX_CFLAGS_LINK
#     useClang;                           # needs the clang + lld stdenv
#     names; }                            # armorred's names for what is asked
#
# Everything nixpkgs has a hardening flag for goes through `hardeningEnable`
# (the cc-/bintools-wrapper turn the names into compiler/linker flags); only
# what nixpkgs has no flag for, or what the compiler's wrapper drops, goes
# into NIX_CFLAGS_COMPILE.
#
# FORTIFY_SOURCE=3 under clang: nixpkgs' clang lists `fortify3` among its
# hardeningUnsupportedFlags (llvm/common/clang/default.nix), so add-hardening.sh
# removes the name and the default `fortify` emits -D_FORTIFY_SOURCE=2. The
# overlay then passes `-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3` itself: the
# cc-wrapper puts NIX_CFLAGS_COMPILE after its hardeningCFlagsAfter, so this
# define is the last one on every compile, and the wrapper's `fortify` still
# supplies the -O2 that FORTIFY needs. A wrapper with a patched supported list
# was not chosen: it would be a second clang wrapper to keep in step with
# nixpkgs, and it changes nothing the derivation's environment shows.
{ hardening ? { }
, isx86_64 ? true
, isAarch64 ? false
  # the main package's / the dependencies' compiler drops the fortify3 name
  # (read from the wrapped compiler by overlay.nix)
, mainLacksFortify3 ? false
, baseLacksFortify3 ? false
  # nixpkgs hardening names to leave out / to add (checked against the list below)
, exclude ? [ ]
, extra ? [ ]
}:
let
  u = import ./util.nix;
  inherit (builtins) attrNames elem filter isBool concatStringsSep;

  # `knownHardeningFlags` of pkgs/stdenv/generic/make-derivation.nix in the
  # pinned nixpkgs (nixos-25.11, flake.lock). mkDerivation aborts on any other
  # name. "pie" is NOT in it: nixpkgs dropped the flag in 25.11 (PIE is the
  # compilers' default; using it gives an evaluation warning). See
  # nix/nixpkgs/README.md for where each name was checked.
  knownHardeningFlags = [
    "bindnow" "format" "fortify" "fortify3" "strictflexarrays1" "strictflexarrays3"
    "shadowstack" "nostrictaliasing" "pacret" "pic" "relro" "stackprotector"
    "glibcxxassertions" "libcxxhardeningfast" "libcxxhardeningextensive"
    "stackclashprotection" "strictoverflow" "trivialautovarinit" "zerocallusedregs"
  ];

  allowedKeys = [ "cfi" "lto" "safestack" "cfiGeneralizePointers" ];
  badKeys = filter (k: !(elem k allowedKeys)) (attrNames hardening);
  nonBool = filter (k: !(isBool hardening.${k})) (attrNames hardening);
  unknownNames = filter (n: !(elem n knownHardeningFlags)) (exclude ++ extra);
  checked =
    if badKeys != [ ] then
      throw "armorred: unknown hardening key(s) ${concatStringsSep ", " badKeys} (known: ${concatStringsSep ", " allowedKeys})"
    else if nonBool != [ ] then
      throw "armorred: hardening ${concatStringsSep ", " nonBool} must be true or false"
    else if unknownNames != [ ] then
      throw "armorred: unknown nixpkgs hardening flag(s) ${concatStringsSep ", " unknownNames} (known in the pinned nixpkgs: ${concatStringsSep " " knownHardeningFlags})"
    else hardening;

  cfi = checked.cfi or false;
  safestack = checked.safestack or false;
  # CFI needs LTO, so asking for CFI implies it (as in the offline set).
  lto = (checked.lto or false) || cfi;
  generalize = checked.cfiGeneralizePointers or true;

  # The maximum set of nixpkgs hardening names for C/C++ code (pkgsExtraHardening
  # uses the same extra names on top of the defaults, with strictflexarrays1
  # rather than strictflexarrays3, which breaks many C code bases):
  #   fortify3             -D_FORTIFY_SOURCE=3 (implies fortify)
  #   stackprotector       -fstack-protector-strong
  #   stackclashprotection -fstack-clash-protection
  #   strictoverflow       -fno-strict-overflow (-fwrapv with clang)
  #   format               -Wformat -Wformat-security -Werror=format-security
  #   pic                  -fPIC
  #   relro, bindnow       -z relro, -z now (bintools-wrapper)
  #   zerocallusedregs     -fzero-call-used-regs=used-gpr
  #   trivialautovarinit   -ftrivial-auto-var-init=pattern
  #   nostrictaliasing     -fno-strict-aliasing
  #   strictflexarrays1    -fstrict-flex-arrays=1
  #   glibcxxassertions    -D_GLIBCXX_ASSERTIONS (C++ only)
  #   shadowstack          -fcf-protection=return (x86_64)
  #   pacret               -mbranch-protection=pac-ret (aarch64)
  common = [
    "fortify3" "stackprotector" "stackclashprotection" "strictoverflow" "format"
    "pic" "relro" "bindnow" "zerocallusedregs" "trivialautovarinit"
    "nostrictaliasing" "strictflexarrays1" "glibcxxassertions"
  ] ++ u.optional isAarch64 "pacret";

  enableList = withShadowstack:
    u.unique (u.subtract exclude (common ++ u.optional (isx86_64 && withShadowstack) "shadowstack" ++ extra));

  # Full CET (IBT + shadow stack compatible code) has no nixpkgs flag of its
  # own ("shadowstack" is only -fcf-protection=return), so -fcf-protection=full
  # is added by hand. NIX_CFLAGS_COMPILE comes after the wrapper's hardening
  # flags on the command line (cc-wrapper.sh), so "full" wins over "return".
  cetFlags = u.optional isx86_64 "-fcf-protection=full";

  # clang 14 measured on nginx: -fsanitize=cfi together with -fcf-protection
  # makes CFI jump tables start with int3 (SIGTRAP at start-up). So a CFI build
  # gets neither -fcf-protection=full nor the shadowstack name.
  mainCet = isx86_64 && !cfi;
  # Clang's driver wants an explicit -fvisibility= with -fsanitize=cfi. It is
  # `default`, not `hidden`: NIX_CFLAGS_COMPILE reaches every object of the
  # package, so `hidden` would also strip the exported symbols of the shared
  # libraries a CFI tier builds. The indirect-call checks (cfi-icall, all
  # that C code gets) do not depend on visibility; only C++ virtual-call
  # checks skip classes with public LTO visibility.
  sanitize =
    u.optional lto "-flto"
    ++ u.optionals cfi ([ "-fvisibility=default" "-fsanitize=cfi" ]
      ++ u.optional generalize "-fsanitize-cfi-icall-generalize-pointers")
    ++ u.optional safestack "-fsanitize=safe-stack";

  fortifyDefine = lacks: u.optionals lacks [ "-U_FORTIFY_SOURCE" "-D_FORTIFY_SOURCE=3" ];

  # CET is not among the names: -fcf-protection=full marks the code (IBT and
  # shadow-stack compatible), but nixpkgs' glibc enforces neither unless it is
  # built with enableCETRuntimeDefault, which would rebuild everything. So the
  # nixpkgs set claims only what it enforces; the marking stays, so a glibc
  # that enforces CET can run these binaries unchanged.
  baseNames = [ "fortify3" "stackprotector" "stackclash" "pie" "relro" "bindnow" "noexecstack" ];

  base = {
    hardeningEnable = enableList true;
    hardeningDisable = [ ];
    cflags = fortifyDefine baseLacksFortify3 ++ cetFlags;
    ldflags = [ ];
    useClang = false;
    names = baseNames;
  };

  main = {
    hardeningEnable = enableList mainCet;
    hardeningDisable = u.optional (isx86_64 && cfi) "shadowstack";
    cflags = fortifyDefine mainLacksFortify3 ++ u.optionals mainCet cetFlags ++ sanitize;
    # also given at link time (the cc-wrapper passes NIX_CFLAGS_COMPILE to
    # links as well; this keeps the sanitizer runtimes and LTO explicit)
    ldflags = sanitize;
    useClang = cfi || lto || safestack;
    names = baseNames
      ++ u.optional cfi "cfi"
      ++ u.optional lto "lto"
      ++ u.optional safestack "safestack";
  };
in
{
  inherit knownHardeningFlags base main;
  tier = { inherit cfi lto safestack; cfiGeneralizePointers = generalize; };
  # -fcf-protection=full is compiled in where CFI is off, but not enforced
  cetMarkedNotEnforced = { base = isx86_64; main = mainCet; };
}
