# mkHardened: the offline set's mini-stdenv. Returns a plain `derivation`
# (builder /bin/sh + ./builder.sh, host tools from /usr/bin:/bin; needs
# sandbox = false) with extra plain attributes merged in with `//` so that
# armorred can read them with `nix-instantiate --eval --json`:
#   pname version hardening hardeningNames cflags ldflags cflagsList
#   ldflagsList features enabledFeatures droppedFeatures unavailableFeatures
#   kind licenses
#
# Arguments:
#   pname, version, src            src: tarball or directory
#   hardening ? <tier default>     see hardening.nix
#   kind ? "exe"                   "exe" (-fPIE/-pie) or "lib" (-fPIC, no -pie;
#                                  the builder adds -Wl,-rpath,$out/lib)
#   deps ? [ ]                     store deps; each `lib` dir goes into RUNPATH
#   preConfigure, configurePhase, buildPhase, installPhase, postInstall
#                                  shell strings (POSIX sh), run in the source dir
#   sourceRoot ? null              directory inside the tarball (default: the only one)
#   env ? { }                      extra environment variables for the builder
#   features/enabledFeatures/droppedFeatures/unavailableFeatures ? [ ]
#   licenses ? [ ]                 SPDX license ids (metadata only, not in the drv)
#   passthru ? { }                 extra attributes merged into the result
#   dontStrip ? false              by default only debug info is stripped
{ glibc, hardeningLib, toolchainId, defaultHardening ? { } }:

{ pname
, version
, src
, hardening ? defaultHardening
, kind ? "exe"
, deps ? [ ]
, preConfigure ? ""
, configurePhase ? ""
, buildPhase ? "make -j\"$NIX_BUILD_CORES\""
, installPhase ? "make install"
, postInstall ? ""
, sourceRoot ? null
, env ? { }
, features ? [ ]
, enabledFeatures ? features
, droppedFeatures ? [ ]
, unavailableFeatures ? [ ]
, licenses ? [ ]
, passthru ? { }
, dontStrip ? false
}:
let
  f = hardeningLib.flagsFor { inherit hardening kind deps; };
  drv = derivation ({
    name = "${pname}-${version}";
    inherit pname version src toolchainId kind;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ ./builder.sh ];
    PATH = "/usr/bin:/bin";
    CC = "clang";
    CXX = "clang++";
    AR = "llvm-ar-14";
    RANLIB = "llvm-ranlib-14";
    NM = "llvm-nm-14";
    CFLAGS = f.cflags;
    CXXFLAGS = f.cflags;
    LDFLAGS = f.ldflags;
    hardeningNames = builtins.concatStringsSep " " f.names;
    inherit glibc deps preConfigure configurePhase buildPhase installPhase postInstall;
    enabledFeatures = builtins.concatStringsSep " " enabledFeatures;
    dontStrip = if dontStrip then "1" else "";
  }
  // (if sourceRoot == null then { } else { inherit sourceRoot; })
  // env);
in
drv // {
  inherit pname version features enabledFeatures droppedFeatures unavailableFeatures kind licenses;
  hardening = f.hardening;
  hardeningNames = f.names;
  inherit (f) cflags ldflags;
  cflagsList = f.compile;
  ldflagsList = f.link;
} // passthru
