# The host's glibc runtime (plus libxcrypt's libcrypt and libgcc_s), imported
# into the store as `glibc-<upstream version>`, so SBOM tools (syft's Nix
# cataloger, armorred's SBOMs) see a named, versioned glibc with a CPE.
#
# The copied files are content-addressed (builtins.path with a filter), and
# the Debian binary packages they come from are read from the host's dpkg
# database at evaluation and recorded in the derivation: a libc6 update gives
# a new store path (and therefore rebuilds everything linked against it) even
# before anyone looks at the files.
#
# The origin is written to `$out/nix-support/armorred-origin.json`:
#   {
#     "schema": "armorred.debian-origin/v1",
#     "distro": "debian-12",                 # os-release ID-VERSION_ID
#     "package": "libc6", "version": "2.36-9+deb12u13", "architecture": "amd64",
#     "source": "glibc", "sourceVersion": "2.36-9+deb12u13",
#     "upstreamVersion": "2.36",             # the store path's version
#     "files": [ "libc.so.6", … ],           # what was copied from this package
#     "alsoFrom": [ { package, version, architecture, source, sourceVersion, files } ]
#   }
# `alsoFrom` names the other packages whose files ride along (libcrypt1,
# libgcc-s1); they are not glibc, so the SBOM mentions them as properties only.
#
# Build-time note: packages compile against the host's /usr/include and link
# against the host's libc.so/crt*.o (the same glibc version as these files); at
# run time they only use this store path (PT_INTERP + RUNPATH).
{ libDir ? /lib/x86_64-linux-gnu
, dpkgStatus ? /var/lib/dpkg/status
, osRelease ? /etc/os-release
, debianArch ? "amd64"
}:
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
  # The Debian binary package each non-libc6 file comes from.
  otherOwners = {
    "libcrypt.so.1" = "libcrypt1";
    "libgcc_s.so.1" = "libgcc-s1";
  };

  # The upstream version, from the matching host headers (libc6-dev).
  featuresH = /usr/include/features.h;
  versionMatch =
    if builtins.pathExists featuresH then
      builtins.match ".*#define[ \t]+__GLIBC__[ \t]+([0-9]+).*#define[ \t]+__GLIBC_MINOR__[ \t]+([0-9]+).*"
        (builtins.readFile featuresH)
    else null;
  version =
    if versionMatch == null
    then throw "glibc.nix: cannot read __GLIBC__/__GLIBC_MINOR__ from ${toString featuresH} (install libc6-dev)"
    else "${builtins.elemAt versionMatch 0}.${builtins.elemAt versionMatch 1}";

  # dpkg's status file: stanzas split on blank lines, fields `Key: value`
  # (continuation lines start with a space and are skipped). Each stanza is
  # matched line by line: one regex over the whole file would overflow
  # std::regex's recursion.
  lines = s: builtins.filter builtins.isString (builtins.split "\n" s);
  fieldsOf = stanza: builtins.listToAttrs (builtins.concatMap
    (l:
      let m = builtins.match "([A-Za-z0-9-]+): (.*)" l; in
      if m == null then [ ] else [{ name = builtins.elemAt m 0; value = builtins.elemAt m 1; }])
    (lines stanza));
  stanzas = builtins.filter builtins.isString (builtins.split "\n\n" (builtins.readFile dpkgStatus));
  installed = pkg:
    let
      prefix = "Package: ${pkg}\n";
      hits = builtins.filter
        (f: (f.Architecture or "") == debianArch
          && builtins.match ".* installed" (f.Status or "") != null)
        (map fieldsOf (builtins.filter
          (s: builtins.substring 0 (builtins.stringLength prefix) s == prefix)
          stanzas));
    in
    if hits == [ ] then null else builtins.head hits;
  # `Source: gcc-12 (12.2.0-14)` names another version; a bare `Source:` or
  # none means the source has the binary's name and version.
  describe = pkg: f:
    let
      src = builtins.match "([^ ]+)( \\((.*)\\))?" (f.Source or pkg);
      srcVersion = builtins.elemAt src 2;
    in
    {
      package = pkg;
      version = f.Version;
      architecture = f.Architecture;
      source = builtins.elemAt src 0;
      sourceVersion = if srcVersion == null then f.Version else srcVersion;
    };

  libc6Fields = installed "libc6";
  libc6 =
    if libc6Fields == null
    then throw "glibc.nix: no installed libc6:${debianArch} in ${toString dpkgStatus}"
    else describe "libc6" libc6Fields;
  # Debian's version is `[epoch:]<upstream>-<revision>`; the headers must be
  # the same glibc the runtime files are, or the SBOM would name the wrong one.
  _checked =
    if builtins.match "([0-9]+:)?${builtins.replaceStrings ["."] ["\\."] version}-.*" libc6.version != null
    then true
    else throw "glibc.nix: headers say glibc ${version} but libc6 is ${libc6.version}";

  osField = key:
    let m = builtins.filter (x: x != null) (map (builtins.match "${key}=\"?([^\"]*)\"?") (lines (builtins.readFile osRelease)));
    in if m == [ ] then null else builtins.head (builtins.head m);
  distro =
    let id = osField "ID"; v = osField "VERSION_ID"; in
    if id == null then "unknown" else if v == null then id else "${id}-${v}";

  libc6Files = builtins.filter (f: !(otherOwners ? ${f})) wanted;
  alsoFrom = builtins.concatMap
    (file:
      let pkg = otherOwners.${file}; f = installed pkg; in
      if f == null then [ ] else [ (describe pkg f // { files = [ file ]; }) ])
    (builtins.attrNames otherOwners);

  origin = libc6 // {
    schema = "armorred.debian-origin/v1";
    inherit distro alsoFrom;
    upstreamVersion = version;
    files = libc6Files;
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
assert _checked;
derivation {
  name = "glibc-${version}";
  system = "x86_64-linux";
  builder = "/bin/sh";
  PATH = "/usr/bin:/bin";
  inherit files;
  required = builtins.concatStringsSep " " required;
  optionalLibs = builtins.concatStringsSep " " optionalLibs;
  # Part of the derivation, so a new libc6 (or libcrypt1, libgcc-s1) is a new path.
  originJson = builtins.toJSON origin;
  args = [
    "-ec"
    ''
      mkdir -p "$out/lib" "$out/nix-support"
      for f in $required; do
        [ -e "$files/$f" ] || { echo "glibc: missing required $f in host libc dir" >&2; exit 1; }
        cp -L "$files/$f" "$out/lib/$f"
      done
      for f in $optionalLibs; do
        if [ -e "$files/$f" ]; then cp -L "$files/$f" "$out/lib/$f"; fi
      done
      chmod 0555 "$out"/lib/*
      "$out/lib/ld-linux-x86-64.so.2" --version | head -1 > "$out/version"
      printf '%s\n' "$originJson" > "$out/nix-support/armorred-origin.json"
    ''
  ];
}
// {
  pname = "glibc";
  inherit version origin distro;
  debianPackage = libc6.package;
  debianVersion = libc6.version;
  debianArch = libc6.architecture;
  debianSource = libc6.source;
  # glibc, plus libxcrypt (libcrypt.so.1) and libgcc_s.so.1 (GCC runtime library exception)
  licenses = [ "LGPL-2.1-or-later" "GPL-3.0-or-later WITH GCC-exception-3.1" ];
}
