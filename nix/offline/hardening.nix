# THE single definition of armorred's hardening flags. Every package of the
# offline set (and every `package.file` built through `mkHardened`) gets its
# compiler and linker flags from `flagsFor` below; there are no per-package
# copies.
#
# A tier's hardening is an attrset
#   { cfi ? false; lto ? false; safestack ? false; cfiGeneralizePointers ? true; }
# Unknown keys are an evaluation error (catches typos such as `safeStack`).
{ glibc }:
let
  lib = import ./lib.nix;
  inherit (lib) optional optionals concatStringsSep;

  defaults = { cfi = false; lto = false; safestack = false; cfiGeneralizePointers = true; };

  normalize = h:
    let unknown = builtins.filter (n: !(defaults ? ${n})) (builtins.attrNames h);
    in
    if !(builtins.isAttrs h) then throw "armorred: hardening must be an attrset"
    else if unknown != [ ] then
      throw "armorred: unknown hardening option(s): ${concatStringsSep ", " unknown} (known: ${concatStringsSep ", " (builtins.attrNames defaults)})"
    else
      let nonBool = builtins.filter (n: !(builtins.isBool h.${n})) (builtins.attrNames h);
      in if nonBool != [ ] then throw "armorred: hardening option(s) must be booleans: ${concatStringsSep ", " nonBool}"
      else defaults // h;

  interpreter = "${glibc}/lib/ld-linux-x86-64.so.2";

  # kind: "exe" (position-independent executables, -fPIE/-pie) or "lib"
  #       (shared libraries and whatever else the package links: -fPIC, no -pie)
  # deps: derivations whose `lib` directory goes into RUNPATH (glibc is always
  #       appended), so binaries find libraries only through store paths.
  flagsFor = { hardening ? { }, kind ? "exe", deps ? [ ] }:
    let
      h = normalize hardening;
      exe = kind == "exe";
      lto = h.lto || h.cfi; # CFI requires LTO
      cet = !h.cfi; # clang 14: CFI + -fcf-protection => int3 jump tables, SIGTRAP

      ltoFlags = optional lto "-flto";
      cfiFlags = optionals h.cfi ([ "-fvisibility=hidden" "-fsanitize=cfi" ]
        ++ optional h.cfiGeneralizePointers "-fsanitize-cfi-icall-generalize-pointers");
      safestackFlags = optional h.safestack "-fsanitize=safe-stack";

      compile = [
        "-O2"
        "-D_FORTIFY_SOURCE=3"
        "-fstack-protector-strong"
        "-fstack-clash-protection"
        (if exe then "-fPIE" else "-fPIC")
        "-Wformat"
        "-Wformat-security"
        "-Werror=format-security"
      ]
      ++ optional cet "-fcf-protection=full"
      ++ ltoFlags ++ cfiFlags ++ safestackFlags;

      rpathDirs = lib.unique (map (d: "${d}/lib") (deps ++ [ glibc ]));

      link = optional exe "-pie"
        ++ [
        "-Wl,-z,relro,-z,now"
        "-Wl,-z,noexecstack"
        "-fuse-ld=lld"
        "-Wl,--enable-new-dtags"
        "-Wl,--dynamic-linker=${interpreter}"
      ]
      ++ map (d: "-Wl,-rpath,${d}") rpathDirs
      # glibc >= 2.34 dlopen()s libgcc_s.so.1 for pthread_exit/pthread_cancel;
      # in a FROM-scratch image there is no ld.so.cache or /lib to find it
      # ("libgcc_s.so.1 must be installed for pthread_exit to work", abort;
      # measured in a chroot). Linking it (RUNPATH -> store glibc) makes the
      # dlopen find the already-loaded copy. nginx thread pools use pthread_exit.
      ++ optional exe "-Wl,--push-state,--no-as-needed,-lgcc_s,--pop-state"
      ++ ltoFlags ++ cfiFlags ++ safestackFlags;

      names = [ "fortify3" "stackprotector" "stackclash" (if exe then "pie" else "pic") "relro" "bindnow" "noexecstack" ]
        ++ [ (if h.cfi then "cfi" else "cet") ]
        ++ optional lto "lto"
        ++ optional h.safestack "safestack";
    in
    {
      hardening = h;
      inherit kind compile link names interpreter rpathDirs;
      cflags = concatStringsSep " " compile;
      ldflags = concatStringsSep " " link;
    };
in
{
  inherit defaults normalize flagsFor interpreter;
  # the base set every dependency (zlib, pcre2, openssl, the shell) is built with
  base = { };
}
