# The host's glibc runtime (plus libxcrypt's libcrypt and libgcc_s), imported
# into the store. The copied files are content-addressed (builtins.path with a
# filter), so the same host gives the same store path and a host glibc update
# gives a new one (and therefore rebuilds everything linked against it).
#
# Build-time note: packages compile against the host's /usr/include and link
# against the host's libc.so/crt*.o (the same glibc version as these files); at
# run time they only use this store path (PT_INTERP + RUNPATH).
{ libDir ? /lib/x86_64-linux-gnu }:
let
  required = [
    "libc.so.6"
    "ld-linux-x86-64.so.2"
    "libm.so.6"
    "libpthread.so.0"
    "libdl.so.2"
    "librt.so.1"
    "libresolv.so.2"
    "libcrypt.so.1"
  ];
  optionalLibs = [
    "libnss_files.so.2"
    "libnss_dns.so.2"
    "libutil.so.1"
    "libanl.so.1"
    "libgcc_s.so.1"
  ];
  wanted = required ++ optionalLibs;
  # version for metadata only, from the matching host headers (libc6-dev)
  featuresH = /usr/include/features.h;
  versionMatch =
    if builtins.pathExists featuresH then
      builtins.match ".*#define[ \t]+__GLIBC__[ \t]+([0-9]+).*#define[ \t]+__GLIBC_MINOR__[ \t]+([0-9]+).*"
        (builtins.readFile featuresH)
    else null;
  version = if versionMatch == null then "host"
    else "${builtins.elemAt versionMatch 0}.${builtins.elemAt versionMatch 1}";
  # libcrypt.so.1 is a symlink to libcrypt.so.1.1.0: keep its target too
  keep = name: builtins.elem name wanted
    || builtins.substring 0 14 name == "libcrypt.so.1.";
  files = builtins.path {
    path = libDir;
    name = "host-glibc-files";
    filter = path: type: type != "directory" && keep (baseNameOf path);
  };
in
derivation {
  name = "glibc-host";
  system = "x86_64-linux";
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  inherit files;
  required = builtins.concatStringsSep " " required;
  optionalLibs = builtins.concatStringsSep " " optionalLibs;
  args = [
    "-ec"
    ''
      mkdir -p "$out/lib"
      for f in $required; do
        [ -e "$files/$f" ] || { echo "glibc-host: missing required $f in host libc dir" >&2; exit 1; }
        cp -L "$files/$f" "$out/lib/$f"
      done
      for f in $optionalLibs; do
        if [ -e "$files/$f" ]; then cp -L "$files/$f" "$out/lib/$f"; fi
      done
      chmod 0555 "$out"/lib/*
      "$out/lib/ld-linux-x86-64.so.2" --version | head -1 > "$out/version"
    ''
  ];
}
// {
  pname = "glibc";
  inherit version;
  # glibc, plus libxcrypt (libcrypt.so.1) and libgcc_s.so.1 (GCC runtime library exception)
  licenses = [ "LGPL-2.1-or-later" "GPL-3.0-or-later WITH GCC-exception-3.1" ];
}
