# The stand-in package set (see ./default.nix). `self` is the final set.
{ system }:
self:
let
  inherit (builtins) filter elem attrNames isFunction functionArgs intersectAttrs concatStringsSep;
  optional = c: x: if c then [ x ] else [ ];

  # knownHardeningFlags of pkgs/stdenv/generic/make-derivation.nix (nixos-25.11),
  # written down independently of nix/nixpkgs/flags.nix so that a wrong name
  # in the overlay fails here like mkDerivation's abort would.
  knownHardeningFlags = [
    "bindnow" "format" "fortify" "fortify3" "strictflexarrays1" "strictflexarrays3"
    "shadowstack" "nostrictaliasing" "pacret" "pic" "relro" "stackprotector"
    "glibcxxassertions" "libcxxhardeningfast" "libcxxhardeningextensive"
    "stackclashprotection" "strictoverflow" "trivialautovarinit" "zerocallusedregs"
  ];

  platform = {
    inherit system;
    isx86_64 = system == "x86_64-linux";
    isAarch64 = system == "aarch64-linux";
    isLinux = true;
    isDarwin = false;
  };

  mkDerivationWith = stdenv: attrs:
    let
      flagsUsed = (attrs.hardeningEnable or [ ]) ++ filter (f: f != "all") (attrs.hardeningDisable or [ ]);
      # 25.11 warns about "pie" (removed flag); the stand-in is stricter
      bad = filter (f: !(elem f knownHardeningFlags)) flagsUsed;
      overlap = filter (n: attrs ? ${n}) (attrNames (attrs.env or { }));
      checked =
        if bad != [ ] then
          throw "mkDerivation was called with unsupported hardening flags: ${concatStringsSep " " bad}"
        else if overlap != [ ] then
          throw "The `env` attribute set cannot contain any attributes passed to derivation. The following attributes are overlapping: ${concatStringsSep ", " overlap}"
        else attrs;
      name = checked.name or "${checked.pname}-${checked.version}";
      drv = removeAttrs checked [ "passthru" ] // (checked.passthru or { }) // {
        inherit name;
        type = "fake-derivation";
        stdenvName = stdenv.name;
        ccName = stdenv.cc.pname;
        bintoolsName = stdenv.cc.bintools.pname;
        outPath = "/nix/store/00000000000000000000000000000000-${name}";
        outputName = "out";
        outputSpecified = false;
        overrideAttrs = f: mkDerivationWith stdenv (checked // f checked);
        out = drv;
        dev = drv // { outputName = "dev"; outputSpecified = true; outPath = "${drv.outPath}-dev"; };
      };
    in
    drv;

  mkStdenv = cc:
    let
      s = {
        name = "stdenv-${cc.pname}";
        inherit cc;
        hostPlatform = platform;
        buildPlatform = platform;
        mkDerivation = mkDerivationWith s;
        override = a: mkStdenv (a.cc or cc);
      };
    in
    s;

  # lib.makeOverridable / callPackage: `.override` re-calls with merged args;
  # an unexpected argument is an error unless the function takes `...`.
  callPackageWith = autoArgs: fn: args:
    let
      f = if isFunction fn then fn else import fn;
      call = a:
        let r = f a; in
        if isFunction r then r
        else r // { override = newArgs: call (a // (if isFunction newArgs then newArgs a else newArgs)); };
    in
    call (intersectAttrs (functionArgs f) autoArgs // args);

  lib1 = { stdenv, pname, version ? "1.0", buildInputs ? [ ], propagatedBuildInputs ? [ ], extra ? { } }:
    stdenv.mkDerivation ({
      inherit pname version buildInputs propagatedBuildInputs;
      meta.license = { spdxId = "MIT"; };
    } // extra);

  # pkgs/servers/http/nginx/generic.nix (arguments and configureFlags shape)
  nginxGeneric =
    outer@{ stdenv, openssl, zlib-ng, pcre2, libxml2, libxslt, perl, gd, geoip
    , withDebug ? false, withGeoIP ? false, withImageFilter ? false, withKTLS ? true
    , withMail ? false, withPerl ? true, withSlice ? false, withStream ? true
    , modules ? [ ], ... }:
    { version, pname ? "nginx" }:
    stdenv.mkDerivation {
      inherit pname version;
      buildInputs = [ openssl zlib-ng pcre2 libxml2 libxslt perl ]
        ++ builtins.concatMap (m: m.inputs or [ ]) modules
        ++ optional withGeoIP geoip ++ optional withImageFilter gd;
      configureFlags = [
        "--sbin-path=bin/nginx" "--with-http_ssl_module" "--with-http_v2_module" "--with-http_v3_module"
        "--with-http_realip_module" "--with-http_addition_module" "--with-http_xslt_module"
        "--with-http_sub_module" "--with-http_dav_module" "--with-http_flv_module"
        "--with-http_mp4_module" "--with-http_gunzip_module" "--with-http_gzip_static_module"
        "--with-http_auth_request_module" "--with-http_random_index_module"
        "--with-http_secure_link_module" "--with-http_degradation_module"
        "--with-http_stub_status_module" "--with-threads" "--with-pcre-jit"
      ]
      ++ optional withDebug "--with-debug"
      ++ optional withKTLS "--with-openssl-opt=enable-ktls"
      ++ (if withStream then [ "--with-stream" "--with-stream_realip_module" "--with-stream_ssl_module" "--with-stream_ssl_preread_module" ] else [ ])
      ++ (if withMail then [ "--with-mail" "--with-mail_ssl_module" ] else [ ])
      ++ (if withPerl then [ "--with-http_perl_module" "--with-perl=${perl}/bin/perl" "--with-perl_modules_path=lib/perl5" ] else [ ])
      ++ optional withImageFilter "--with-http_image_filter_module"
      ++ optional withSlice "--with-http_slice_module"
      ++ optional withGeoIP "--with-http_geoip_module"
      ++ [ "--with-file-aio" ]
      ++ map (m: "--add-module=${m.src}") modules;
      env.NIX_CFLAGS_COMPILE = "-I${libxml2.dev}/include/libxml2 -Wno-error=implicit-fallthrough"
        + (if stdenv.cc.isClang then " -Wno-error=deprecated-declarations" else "");
      standinArgs = { inherit withDebug withGeoIP withImageFilter withKTLS withMail withPerl withSlice withStream; };
      passthru = { inherit modules; };
      meta.license = [{ spdxId = "BSD-2-Clause"; }];
    };
  # pkgs/servers/http/nginx/stable.nix: forwards its arguments to generic.nix
  nginxStable = { callPackage, ... }@args: callPackage nginxGeneric args { version = "1.28.0"; };
in
{
  inherit knownHardeningFlags;
  callPackage = callPackageWith self;

  stdenv = mkStdenv self.gccWrapper;
  stdenvAdapters = {
    overrideCC = stdenv: cc: stdenv.override { allowedRequisites = null; inherit cc; hasCC = cc != null; };
  };
  gccWrapper = {
    pname = "gcc-wrapper";
    version = "14.3.0";
    isClang = false;
    isGNU = true;
    libc = self.glibc;
    bintools = self.binutils;
    override = a: self.gccWrapper // a;
  };
  binutils = { pname = "binutils-wrapper"; version = "2.44"; };
  llvmPackages = {
    clang = {
      pname = "clang-wrapper";
      version = "19.1.7";
      isClang = true;
      isGNU = false;
      libc = self.glibc;
      bintools = self.binutils;
      override = a: self.llvmPackages.clang // a;
    };
    bintools = { pname = "llvm-binutils-wrapper"; version = "19.1.7"; };
  };

  glibc = lib1 { inherit (self) stdenv; pname = "glibc"; version = "2.40-66"; extra.meta.license = { spdxId = "LGPL-2.1-or-later"; }; };
  zlib = lib1 { inherit (self) stdenv; pname = "zlib"; version = "1.3.1"; extra.meta.license = { spdxId = "Zlib"; }; };
  zlib-ng = lib1 { inherit (self) stdenv; pname = "zlib-ng"; version = "2.2.5"; };
  xz = lib1 { inherit (self) stdenv; pname = "xz"; version = "5.8.1"; };
  openssl = lib1 { inherit (self) stdenv; pname = "openssl"; version = "3.5.4"; extra.meta.license = { spdxId = "Apache-2.0"; }; };
  # sets NIX_CFLAGS_COMPILE as a top-level attribute (must not be moved to env)
  pcre2 = lib1 { inherit (self) stdenv; pname = "pcre2"; version = "10.46"; extra.NIX_CFLAGS_COMPILE = "-DSTANDIN_TOPLEVEL"; };
  libxml2 = lib1 { inherit (self) stdenv; pname = "libxml2"; version = "2.14.5"; buildInputs = [ self.zlib self.xz ]; };
  # a selected output in the inputs, a propagated input
  libxslt = lib1 { inherit (self) stdenv; pname = "libxslt"; version = "1.1.43"; buildInputs = [ self.libxml2.dev ]; propagatedBuildInputs = [ self.libxml2 ]; };
  perl = lib1 { inherit (self) stdenv; pname = "perl"; version = "5.40.0"; buildInputs = [ self.zlib ]; };
  gd = lib1 { inherit (self) stdenv; pname = "gd"; version = "2.3.3"; };
  geoip = lib1 { inherit (self) stdenv; pname = "geoip"; version = "1.6.12"; };
  lua = lib1 { inherit (self) stdenv; pname = "lua"; version = "5.2.4"; };
  jemalloc = lib1 { inherit (self) stdenv; pname = "jemalloc"; version = "5.3.0"; };
  libcap = lib1 { inherit (self) stdenv; pname = "libcap"; version = "2.76"; };
  systemd = lib1 { inherit (self) stdenv; pname = "systemd"; version = "258"; buildInputs = [ self.libcap ]; };

  nginxModules.rtmp = { name = "rtmp"; src = "/nix/store/00000000000000000000000000000000-nginx-rtmp-module"; inputs = [ ]; };
  nginx = self.callPackage nginxStable { modules = [ self.nginxModules.rtmp ]; };

  # pkgs/by-name/re/redis/package.nix (arguments; no `...`)
  redis = self.callPackage
    ({ stdenv, lua, jemalloc, systemd, openssl
     , withSystemd ? true, tlsSupport ? true, useSystemJemalloc ? true }:
      stdenv.mkDerivation {
        pname = "redis";
        version = "8.2.1";
        buildInputs = [ lua ] ++ optional useSystemJemalloc jemalloc
          ++ optional withSystemd systemd ++ optional tlsSupport openssl;
        makeFlags = [ "PREFIX=/nix/store/00000000000000000000000000000000-redis-8.2.1" ]
          ++ optional withSystemd "USE_SYSTEMD=yes" ++ optional tlsSupport "BUILD_TLS=yes";
        env.NIX_LDFLAGS = "";
        postPatch = "echo standin";
        standinArgs = { inherit withSystemd tlsSupport useSystemJemalloc; };
        meta.license = { spdxId = "AGPL-3.0-only"; };
      }) { };

  # pkgs/os-specific/linux/busybox/default.nix (arguments, hardeningDisable)
  busybox = self.callPackage
    ({ stdenv, enableAppletSymlinks ? true, enableMinimal ? false, enableStatic ? false
     , extraConfig ? "", useMusl ? false }:
      stdenv.mkDerivation {
        pname = "busybox";
        version = "1.37.0";
        hardeningDisable = [ "format" ];
        configurePhase = "make ${if enableMinimal then "allnoconfig" else "defconfig"}\n${extraConfig}";
        standinArgs = { inherit enableMinimal extraConfig; };
        meta.license = { spdxId = "GPL-2.0-only"; };
      }) { };

  hello = self.callPackage ({ stdenv }: stdenv.mkDerivation { pname = "hello"; version = "2.12.2"; }) { };
}
