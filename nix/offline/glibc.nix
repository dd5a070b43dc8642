# The host's glibc runtime (plus libxcrypt's libcrypt and libgcc_s), imported
# into the store as `glibc-<version>`, so scanners that read Nix store names
# (syft, and so grype) list it with a version and a CPE. The copied files are content-addressed (builtins.path with a
# filter), so the same host gives the same store path and a host glibc update
# gives a new one (and therefore rebuilds everything linked against it).
#
# Build-time note: packages compile against the host's /usr/include and link
# against the host's libc.so/crt*.o (the same glibc version as these files); at
# run time they only use this store path (PT_INTERP + RUNPATH).
{ libDir ? /lib/x86_64-linux-gnu, dpkgStatus ? /var/lib/dpkg/status, osRelease ? /etc/os-release }:
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
  # The Debian binary packages the files come from, with their exact
  # versions, read from the host's dpkg database at evaluation: a security
  # update of libc6 changes the files and so must change the store path, and
  # the SBOM names the true origin (pkg:deb/debian/libc6@…) for scanners to
  # match against Debian's fixed versions.
  paragraphs = if builtins.pathExists dpkgStatus
    then builtins.filter builtins.isString (builtins.split "\n\n" (builtins.readFile dpkgStatus))
    else [ ];
  field = name: para:
    let m = builtins.match "(.*\n)?${name}: ([^\n]*)(\n.*)?" para;
    in if m == null then null else builtins.elemAt m 1;
  debPackage = pkg:
    let
      hits = builtins.filter (para:
        field "Package" ("\n" + para) == pkg
        && field "Architecture" ("\n" + para) == "amd64"
        && builtins.match "(.*\n)?Status: install ok installed(\n.*)?" para != null)
        paragraphs;
    in if hits == [ ] then null else {
      package = pkg;
      version = field "Version" ("\n" + builtins.head hits);
      architecture = "amd64";
      source = let s = field "Source" ("\n" + builtins.head hits); in
        if s == null then pkg else builtins.head (builtins.split " " s);
    };
  osVersion =
    if builtins.pathExists osRelease then
      let m = builtins.match "(.*\n)?VERSION_ID=\"?([0-9]+)\"?(\n.*)?" (builtins.readFile osRelease);
      in if m == null then null else builtins.elemAt m 1
    else null;
  distro = if osVersion == null then null else "debian-${osVersion}";
  debianPackages = builtins.filter (x: x != null) (map debPackage [ "libc6" "libcrypt1" "libgcc-s1" ]);
  origin = {
    schema = "armorred.host-origin/v1";
    name = "glibc";
    inherit version distro;
    cpe = "cpe:2.3:a:gnu:glibc:${version}:*:*:*:*:*:*:*";
    # libc6 first: the package glibc itself is matched on
    packages = debianPackages;
  };
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
  name = "glibc-${version}";
  system = "x86_64-linux";
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  inherit files;
  required = builtins.concatStringsSep " " required;
  optionalLibs = builtins.concatStringsSep " " optionalLibs;
  originJson = builtins.toJSON origin;
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
      mkdir -p "$out/nix-support"
      printf '%s\n' "$originJson" > "$out/nix-support/armorred-origin.json"
    ''
  ];
}
// {
  pname = "glibc";
  inherit version origin;
  # glibc, plus libxcrypt (libcrypt.so.1) and libgcc_s.so.1 (GCC runtime library exception)
  licenses = [ "LGPL-2.1-or-later" "GPL-3.0-or-later WITH GCC-exception-3.1" ];
}
