# The stand-in package set (see ./default.nix). `self` is the final set.
#
# Each piece below names the nixpkgs file whose behaviour it reproduces (read
# through the search tools; paths are relative to a nixpkgs checkout). What
# matters for armorred is modelled, the rest is left out:
#   * mkDerivation: the hardening-name check, env/top-level clashes, the
#     effective hardening set, overrideAttrs, `finalAttrs` functions;
#   * the cc-wrapper: which flags a compile and a link really get, from the
#     enabled names, the compiler's unsupported names and NIX_CFLAGS_*;
#   * callPackage / makeOverridable: `.override` mirrors the function's
#     arguments (lib.functionArgs), missing or unexpected arguments fail;
#   * nginx (stable.nix -> generic.nix, nginxStable's call in
#     all-packages.nix), redis, busybox: arguments, flags, outputs, meta.
{ system }:
self:
let
  inherit (builtins) filter elem attrNames isFunction isAttrs isString functionArgs
    intersectAttrs concatStringsSep concatMap hashString toJSON split;
  optional = c: x: if c then [ x ] else [ ];
  optionals = c: xs: if c then xs else [ ];
  unique = builtins.foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
  words = s: filter (x: isString x && x != "") (split "[ \t\n]+" (toString s));
  escapeRegex = builtins.replaceStrings
    [ "\\" "." "*" "+" "?" "(" ")" "[" "]" "{" "}" "|" "^" "$" ]
    [ "\\\\" "\\." "\\*" "\\+" "\\?" "\\(" "\\)" "\\[" "\\]" "\\{" "\\}" "\\|" "\\^" "\\$" ];
  fnArgs = f: if isFunction f then functionArgs f else f.__functionArgs or (fnArgs (f.__functor f));

  # knownHardeningFlags of pkgs/stdenv/generic/make-derivation.nix (nixos-25.11),
  # written down independently of nix/nixpkgs/flags.nix so that a wrong name
  # in the overlay fails here like mkDerivation's abort would.
  knownHardeningFlags = [
    "bindnow" "format" "fortify" "fortify3" "strictflexarrays1" "strictflexarrays3"
    "shadowstack" "nostrictaliasing" "pacret" "pic" "relro" "stackprotector"
    "glibcxxassertions" "libcxxhardeningfast" "libcxxhardeningextensive"
    "stackclashprotection" "strictoverflow" "trivialautovarinit" "zerocallusedregs"
  ];

  # pkgs/build-support/bintools-wrapper/default.nix, `defaultHardeningFlags ? [
  # "bindnow" "format" "fortify" "fortify3" "pic" "relro" "stackclashprotection"
  # "stackprotector" "strictoverflow" "zerocallusedregs" ]` (glibc platforms, 25.11)
  defaultHardeningFlags = [
    "bindnow" "format" "fortify" "fortify3" "pic" "relro" "stackclashprotection"
    "stackprotector" "strictoverflow" "zerocallusedregs"
  ];

  platform = {
    inherit system;
    isx86_64 = system == "x86_64-linux";
    isAarch64 = system == "aarch64-linux";
    isLinux = true;
    isDarwin = false;
  };

  # pkgs/stdenv/generic/make-derivation.nix: disabling "fortify" disables
  # "fortify3" too; "all" disables everything; the rest is
  # (defaultHardeningFlags ++ hardeningEnable) minus hardeningDisable.
  effectiveHardening = attrs:
    let
      d0 = attrs.hardeningDisable or [ ];
      disable = d0 ++ optional (elem "fortify" d0) "fortify3";
    in
    if elem "all" disable then [ ]
    else filter (f: !(elem f disable)) (unique (defaultHardeningFlags ++ (attrs.hardeningEnable or [ ])));

  # pkgs/build-support/cc-wrapper/default.nix: the unsupported names come from
  # the UNWRAPPED compiler (`cc.hardeningUnsupportedFlagsByTargetPlatform
  # targetPlatform`, else `cc.hardeningUnsupportedFlags`).
  # pkgs/build-support/cc-wrapper/add-hardening.sh: unsupported names are
  # removed ("fortify" unsupported removes "fortify3" too), then "fortify3"
  # removes "fortify"; so a compiler without fortify3 falls back to the
  # "fortify" of the default set: -D_FORTIFY_SOURCE=2. fortify/fortify3 add
  # `-O2 -U_FORTIFY_SOURCE` to hardeningCFlagsBefore and `-U_FORTIFY_SOURCE
  # -D_FORTIFY_SOURCE=N` to hardeningCFlagsAfter.
  # pkgs/build-support/cc-wrapper/cc-wrapper.sh: the compiler runs as
  #   extraBefore (hardeningCFlagsBefore) params extraAfter
  # with extraAfter = hardeningCFlagsAfter ++ NIX_CFLAGS_COMPILE, plus
  # NIX_CFLAGS_LINK when linking; relro/bindnow are added by the
  # bintools-wrapper's ld-wrapper.sh.
  wrapperCommand = cc: attrs:
    let
      unwrapped = cc.cc or { };
      unsupported =
        if unwrapped ? hardeningUnsupportedFlagsByTargetPlatform
        then unwrapped.hardeningUnsupportedFlagsByTargetPlatform platform
        else unwrapped.hardeningUnsupportedFlags or [ ];
      enabled0 = filter
        (f: !(elem f unsupported) && !(f == "fortify3" && elem "fortify" unsupported))
        (effectiveHardening attrs);
      enabled = if elem "fortify3" enabled0 then filter (f: f != "fortify") enabled0 else enabled0;
      has = f: elem f enabled;
      fortify = has "fortify" || has "fortify3";
      before =
        optionals fortify [ "-O2" "-U_FORTIFY_SOURCE" ]
        ++ optionals (has "stackprotector") [ "-fstack-protector-strong" "--param" "ssp-buffer-size=4" ]
        ++ optional (has "pic") "-fPIC"
        ++ optional (has "strictoverflow") (if cc.isClang then "-fwrapv" else "-fno-strict-overflow")
        ++ optionals (has "format") [ "-Wformat" "-Wformat-security" "-Werror=format-security" ]
        ++ optional (has "stackclashprotection") "-fstack-clash-protection"
        ++ optional (has "zerocallusedregs") "-fzero-call-used-regs=used-gpr"
        ++ optional (has "trivialautovarinit") "-ftrivial-auto-var-init=pattern"
        ++ optional (has "shadowstack") "-fcf-protection=return"
        ++ optional (has "pacret") "-mbranch-protection=pac-ret"
        ++ optional (has "nostrictaliasing") "-fno-strict-aliasing"
        ++ optional (has "strictflexarrays1") "-fstrict-flex-arrays=1"
        ++ optional (has "glibcxxassertions") "-D_GLIBCXX_ASSERTIONS";
      after = optionals fortify [ "-U_FORTIFY_SOURCE" (if has "fortify3" then "-D_FORTIFY_SOURCE=3" else "-D_FORTIFY_SOURCE=2") ];
      cflags = attrs.env.NIX_CFLAGS_COMPILE or attrs.NIX_CFLAGS_COMPILE or "";
      lflags = attrs.env.NIX_CFLAGS_LINK or attrs.NIX_CFLAGS_LINK or "";
      ld = optionals (has "relro") [ "-Wl,-z,relro" ] ++ optionals (has "bindnow") [ "-Wl,-z,now" ];
    in
    {
      inherit enabled unsupported;
      # `<package flags>` stands for the package's own command-line flags
      compile = before ++ [ "<package flags>" ] ++ after ++ words cflags;
      link = before ++ [ "<package flags>" ] ++ after ++ words cflags ++ words lflags ++ ld;
    };

  mkDerivationWith = stdenv: attrs0:
    let
      # `stdenv.mkDerivation (finalAttrs: { … })` (redis)
      attrs1 = if isFunction attrs0 then attrs0 attrs1 else attrs0;
      attrs = attrs1;
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
      inputPaths = map (x: x.outPath or (toString x)) ((checked.buildInputs or [ ]) ++ (checked.propagatedBuildInputs or [ ]));
      # a store path that changes with what the builder would see
      identity = hashString "sha256" (toJSON {
        inherit name inputPaths;
        stdenv = stdenv.name;
        h = [ (checked.hardeningEnable or [ ]) (checked.hardeningDisable or [ ]) ];
        f = [ (checked.env or { }) (checked.NIX_CFLAGS_COMPILE or "") (checked.configureFlags or [ ]) (checked.makeFlags or [ ]) ];
        p = [ (checked.postPatch or "") (checked.postInstall or "") (checked.configurePhase or "") ];
      });
      outPath = "/nix/store/${builtins.substring 0 32 identity}-${name}";
      outputs = checked.outputs or [ "out" ];
      drv0 = removeAttrs checked [ "passthru" ] // (checked.passthru or { }) // {
        inherit name outPath outputs;
        type = "fake-derivation";
        drvPath = "/nix/store/${builtins.substring 0 32 identity}-${name}.drv";
        stdenvName = stdenv.name;
        ccName = stdenv.cc.pname;
        bintoolsName = stdenv.cc.bintools.pname;
        ccCommand = wrapperCommand stdenv.cc checked;
        outputName = "out";
        outputSpecified = false;
        overrideAttrs = f: mkDerivationWith stdenv (checked // f checked);
      };
      # Counts how often a base-hardened copy is evaluated (a memoised
      # overlay evaluates each once): tests read the trace from stderr.
      drv = if (checked.passthru.armorredHardening or null) == "base"
        then builtins.trace "standin: base-hardened ${name} ${outPath}" drv0 // outs
        else drv0 // outs;
      outs = builtins.listToAttrs (map (o: {
        name = o;
        value = drv // { outputName = o; outputSpecified = true; outPath = if o == "out" then outPath else "${outPath}-${o}"; };
      }) (outputs ++ optional (!(elem "dev" outputs)) "dev"));
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

  # lib/customisation.nix: makeOverridable wraps the result so that
  # `.override` re-calls the function with merged arguments and mirrors its
  # arguments (mirrorFunctionArgs: lib.functionArgs pkg.override == the
  # function's own), and `.overrideAttrs` keeps `.override` working.
  # callPackageWith: autoArgs by name; a required argument nobody provides is
  # "Function called without required argument"; an argument the function
  # does not take (and it has no `...`) is Nix's own "unexpected argument".
  makeOverridable = f: origArgs:
    let
      r = f origArgs;
      override = {
        __functionArgs = fnArgs f;
        __functor = _: newArgs: makeOverridable f (origArgs // (if isFunction newArgs then newArgs origArgs else newArgs));
      };
    in
    if isAttrs r then
      r // {
        inherit override;
        overrideAttrs = g: makeOverridable (a: (f a).overrideAttrs g) origArgs;
      }
    else r;

  callPackageWith = autoArgs: fn: args:
    let
      f = if isFunction fn then fn else import fn;
      fargs = fnArgs f;
      missing = filter (n: !fargs.${n} && !(autoArgs ? ${n}) && !(args ? ${n})) (attrNames fargs);
    in
    if missing != [ ] then
      throw "Function called without required argument \"${builtins.head missing}\" at ${toString fn}"
    else makeOverridable f (intersectAttrs fargs autoArgs // args);

  lib1 = { stdenv, pname, version ? "1.0", buildInputs ? [ ], propagatedBuildInputs ? [ ], extra ? { } }:
    stdenv.mkDerivation ({
      inherit pname version buildInputs propagatedBuildInputs;
      meta.license = { spdxId = "MIT"; };
    } // extra);

  # pkgs/servers/http/nginx/generic.nix (arguments, buildInputs with perl
  # whatever withPerl says, configureFlags shape and order, env, outputs,
  # postInstall prefix, passthru.modules, meta.license ++ the modules').
  nginxGeneric =
    outer@{ stdenv, openssl, zlib-ng, pcre2, libxml2, libxslt, perl, gd, geoip
    , withDebug ? false, withGeoIP ? false, withImageFilter ? false, withKTLS ? true
    , withMail ? false, withPerl ? true, withSlice ? false, withStream ? true
    , modules ? [ ], ... }:
    { version, pname ? "nginx", configureFlags ? [ ], postInstall ? "" }:
    stdenv.mkDerivation {
      inherit pname version;
      outputs = [ "out" "doc" ];
      buildInputs = [ openssl zlib-ng pcre2 libxml2 libxslt perl ]
        ++ concatMap (m: m.inputs or [ ]) modules
        ++ optional withGeoIP geoip ++ optional withImageFilter gd;
      configureFlags = [
        "--sbin-path=bin/nginx" "--with-http_ssl_module" "--with-http_v2_module" "--with-http_v3_module"
        "--with-http_realip_module" "--with-http_addition_module" "--with-http_xslt_module"
        "--with-http_sub_module" "--with-http_dav_module" "--with-http_flv_module"
        "--with-http_mp4_module" "--with-http_gunzip_module" "--with-http_gzip_static_module"
        "--with-http_auth_request_module" "--with-http_random_index_module"
        "--with-http_secure_link_module" "--with-http_degradation_module"
        "--with-http_stub_status_module" "--with-threads" "--with-pcre-jit"
        "--http-log-path=/var/log/nginx/access.log"
        "--error-log-path=/var/log/nginx/error.log"
        "--pid-path=/var/log/nginx/nginx.pid"
        "--http-client-body-temp-path=/tmp/nginx_client_body"
        "--http-proxy-temp-path=/tmp/nginx_proxy"
        "--http-fastcgi-temp-path=/tmp/nginx_fastcgi"
        "--http-uwsgi-temp-path=/tmp/nginx_uwsgi"
        "--http-scgi-temp-path=/tmp/nginx_scgi"
      ]
      ++ optional withDebug "--with-debug"
      ++ optional withKTLS "--with-openssl-opt=enable-ktls"
      ++ optionals withStream [ "--with-stream" "--with-stream_realip_module" "--with-stream_ssl_module" "--with-stream_ssl_preread_module" ]
      ++ optionals withMail [ "--with-mail" "--with-mail_ssl_module" ]
      ++ optionals withPerl [ "--with-http_perl_module" "--with-perl=${perl}/bin/perl" "--with-perl_modules_path=lib/perl5" ]
      ++ optional withImageFilter "--with-http_image_filter_module"
      ++ optional withSlice "--with-http_slice_module"
      ++ optionals withGeoIP ([ "--with-http_geoip_module" ] ++ optional withStream "--with-stream_geoip_module")
      ++ [ "--with-file-aio" ]
      ++ configureFlags
      ++ map (m: "--add-module=${m.src}") modules;
      env.NIX_CFLAGS_COMPILE = toString [ "-I${libxml2.dev}/include/libxml2" "-Wno-error=implicit-fallthrough" ];
      postInstall = concatStringsSep "" (map (m: "remove-references-to -t ${m.src} $out/bin/nginx\n") modules) + postInstall;
      standinArgs = { inherit withDebug withGeoIP withImageFilter withKTLS withMail withPerl withSlice withStream; };
      passthru = { inherit modules; };
      meta.license = [{ spdxId = "BSD-2-Clause"; }] ++ concatMap (m: m.meta.license) modules;
    };
  # pkgs/servers/http/nginx/stable.nix: `{ callPackage, ... }@args:
  # callPackage ./generic.nix args { version; hash; }` (forwards everything)
  nginxStable = { callPackage, ... }@args: callPackage nginxGeneric args { version = "1.28.0"; };

  nginxModule = name: {
    inherit name;
    src = "/nix/store/00000000000000000000000000000000-nginx-${name}-module-src";
    inputs = [ ];
    meta.license = [{ spdxId = "BSD-2-Clause"; }];
  };
in
{
  inherit knownHardeningFlags defaultHardeningFlags;
  callPackage = callPackageWith self;
  # the few lib functions nix/tests/real-nixpkgs-check.nix uses (lib/lists.nix, lib/strings.nix)
  lib = {
    licenses.mit = { spdxId = "MIT"; };
    functionArgs = fnArgs;
    toList = x: if builtins.isList x then x else [ x ];
    last = xs: builtins.elemAt xs (builtins.length xs - 1);
    attrValues = builtins.attrValues;
    hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
    hasInfix = i: s: builtins.match ".*${escapeRegex i}.*" s != null;
  };

  stdenv = mkStdenv self.gccWrapper;
  stdenvAdapters = {
    overrideCC = stdenv: cc: stdenv.override { allowedRequisites = null; inherit cc; hasCC = cc != null; };
  };
  # gcc >= 12 supports every name the overlay uses on x86_64
  # (pkgs/development/compilers/gcc/common/... hardeningUnsupportedFlags)
  gccWrapper = {
    pname = "gcc-wrapper";
    version = "14.3.0";
    isClang = false;
    isGNU = true;
    cc = { pname = "gcc"; hardeningUnsupportedFlagsByTargetPlatform = p: optional (!p.isAarch64) "pacret"; };
    libc = self.glibc;
    bintools = self.binutils;
    override = a: self.gccWrapper // a;
  };
  binutils = { pname = "binutils-wrapper"; version = "2.44"; };
  llvmPackages = {
    # pkgs/development/compilers/llvm/common/clang/default.nix, passthru:
    #   hardeningUnsupportedFlagsByTargetPlatform = targetPlatform:
    #     [ "fortify3" ] ++ optional (… || !isx86_64) "shadowstack"
    #     ++ optional (… || !isAarch64) "pacret" ++ …
    clang-unwrapped = {
      pname = "clang";
      version = "19.1.7";
      hardeningUnsupportedFlagsByTargetPlatform = p:
        [ "fortify3" ] ++ optional (!p.isx86_64) "shadowstack" ++ optional (!p.isAarch64) "pacret";
    };
    clang = {
      pname = "clang-wrapper";
      version = "19.1.7";
      isClang = true;
      isGNU = false;
      cc = self.llvmPackages.clang-unwrapped;
      libc = self.glibc;
      bintools = self.binutils;
      override = a: self.llvmPackages.clang // a;
    };
    bintools = { pname = "llvm-binutils-wrapper"; version = "19.1.7"; };
  };

  fetchurl = { url, hash ? "", ... }: "/nix/store/00000000000000000000000000000000-${baseNameOf url}";
  # pkgs/build-support/go/module.nix: takes no `stdenv` from its caller (it
  # uses its own); the result is a mkDerivation result with overrideAttrs
  buildGoModule = args: self.stdenv.mkDerivation (removeAttrs args [ "vendorHash" ] // { standinBuilder = "buildGoModule"; });

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
  gd = lib1 { inherit (self) stdenv; pname = "gd"; version = "2.3.3"; buildInputs = [ self.zlib ]; };
  geoip = lib1 { inherit (self) stdenv; pname = "geoip"; version = "1.6.12"; };
  lua = lib1 { inherit (self) stdenv; pname = "lua"; version = "5.2.4"; };
  jemalloc = lib1 { inherit (self) stdenv; pname = "jemalloc"; version = "5.3.0"; };
  libcap = lib1 { inherit (self) stdenv; pname = "libcap"; version = "2.76"; };
  systemd = lib1 { inherit (self) stdenv; pname = "systemd"; version = "258"; buildInputs = [ self.libcap ]; };
  # build tools (nativeBuildInputs only; never part of an image)
  pkg-config = lib1 { inherit (self) stdenv; pname = "pkg-config"; version = "0.29.2"; };
  python3 = lib1 { inherit (self) stdenv; pname = "python3"; version = "3.13.7"; buildInputs = [ self.zlib self.xz ]; };
  tcl = lib1 { inherit (self) stdenv; pname = "tcl"; version = "8.6.16"; };

  # pkgs/servers/http/nginx/modules.nix: each module has name, src, inputs, meta
  nginxModules = {
    rtmp = nginxModule "rtmp";
    dav = nginxModule "dav";
    moreheaders = nginxModule "moreheaders";
  };
  # pkgs/top-level/all-packages.nix: `nginxStable = callPackage
  # ../servers/http/nginx/stable.nix { zlib-ng = …; withPerl = false; modules =
  # [ nginxModules.rtmp nginxModules.dav nginxModules.moreheaders ]; }` and
  # `nginx = nginxStable`
  nginxStable = self.callPackage nginxStable {
    withPerl = false;
    modules = [ self.nginxModules.rtmp self.nginxModules.dav self.nginxModules.moreheaders ];
  };
  nginx = self.nginxStable;

  # pkgs/by-name/re/redis/package.nix (arguments, no `...`; finalAttrs;
  # doCheck = !isDarwin with its own checkPhase; meta.license agpl3Only)
  redis = self.callPackage
    ({ stdenv, lua, jemalloc, systemd, openssl, pkg-config, python3, tcl
     , withSystemd ? true, tlsSupport ? true, useSystemJemalloc ? true }:
      stdenv.mkDerivation (finalAttrs: {
        pname = "redis";
        version = "8.2.1";
        nativeBuildInputs = [ pkg-config python3 ];
        buildInputs = [ lua ] ++ optional useSystemJemalloc jemalloc
          ++ optional withSystemd systemd ++ optional tlsSupport openssl;
        makeFlags = [ "PREFIX=${builtins.placeholder "out"}" ]
          ++ optional withSystemd "USE_SYSTEMD=yes" ++ optional tlsSupport "BUILD_TLS=yes";
        env.NIX_LDFLAGS = "";
        postPatch = "echo standin";
        doCheck = !stdenv.hostPlatform.isDarwin;
        nativeCheckInputs = [ tcl ];
        checkPhase = "./runtest --no-latency --timeout 2000 --tags -leaks";
        standinArgs = { inherit withSystemd tlsSupport useSystemJemalloc; };
        meta.license = { spdxId = "AGPL-3.0-only"; };
        meta.description = "Open source, advanced key-value store (${finalAttrs.pname})";
      })) { };

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
