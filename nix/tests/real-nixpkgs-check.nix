# What the stand-in tests (tests/it/nix_exprs.rs) check, evaluated against the
# REAL pinned nixpkgs (flake.lock). Needs Nix >= 2.18 and network access to
# fetch the pin; nothing is built. Run from the repository root:
#
#   nix eval --impure --json --file nix/tests/real-nixpkgs-check.nix
#
# Expected output: every value true, e.g. {"fortify3ReachesClangBuilds":true,…}
# (the attribute list is `checks` below). A false names the promise that does
# not hold on real nixpkgs; `details` shows what was read.
{ nixpkgs ? (import ../nixpkgs/pin.nix { }).src
, system ? builtins.currentSystem
}:
let
  inherit (builtins) elem filter map any all attrNames fromTOML readFile match head;
  recipe = image: fromTOML (readFile (../../recipes + "/${image}.toml"));
  tierArgs = image: tier:
    let t = (recipe image).tiers.${tier}; in {
      package = { attr = (recipe image).package.attr; };
      hardening = { cfi = t.cfi or false; lto = t.lto or false; safestack = t.safestack or false; };
      drop = t.drop or [ ];
      overrideArgs = t.nixpkgs_override or { };
    };
  pkgsFor = args: import nixpkgs {
    localSystem = { inherit system; };
    config = { };
    overlays = [ (import ../nixpkgs/overlay.nix args) ];
  };
  set = image: tier: (pkgsFor (tierArgs image tier)).armorred;
  sets = {
    nginx-hardened = set "nginx" "hardened";
    nginx-locked = set "nginx" "locked";
    redis-hardened = set "redis" "hardened";
    redis-locked = set "redis" "locked";
  };
  pkgs = import nixpkgs { localSystem = { inherit system; }; };
  lib = pkgs.lib;

  cflagsOf = p: toString (p.env.NIX_CFLAGS_COMPILE or p.NIX_CFLAGS_COMPILE or "");
  flagsOf = p: lib.toList (p.configureFlags or [ ]);
  lastFlag = p: key:
    let vs = filter (x: x != null) (map (f: let m = match "${key}=(.*)" f; in if m == null then null else head m) (flagsOf p));
    in if vs == [ ] then null else lib.last vs;
  out = builtins.placeholder "out";
  unsupported = cc:
    let c = cc.cc; in
    if c ? hardeningUnsupportedFlagsByTargetPlatform then c.hardeningUnsupportedFlagsByTargetPlatform pkgs.stdenv.hostPlatform
    else c.hardeningUnsupportedFlags or [ ];

  fortifyOk = a:
    let p = a.package; in
    if elem "fortify3" (unsupported a.stdenv.cc)
    then lib.hasInfix "-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3" (cflagsOf p)
    else elem "fortify3" (p.hardeningEnable or [ ]);

  nh = sets.nginx-hardened.package;
  nl = sets.nginx-locked.package;
  layoutOk = p:
    lastFlag p "--sbin-path" == "${out}/bin/nginx"
    && lastFlag p "--conf-path" == "${out}/etc/nginx/nginx.conf"
    && lastFlag p "--modules-path" == "${out}/lib/nginx/modules"
    && lastFlag p "--error-log-path" == "/dev/stderr"
    && lastFlag p "--pid-path" == "/tmp/nginx.pid"
    && lib.hasInfix "listen       8080;" p.postInstall
    && lib.hasInfix "$out/etc/nginx/conf.d/default.conf" p.postInstall
    && lib.hasInfix "$out/share/nginx/html" p.postInstall;
  exceptionSos = map (e: e.path) ((recipe "nginx").tiers.hardened.exceptions or [ ]);
  soBuilt = path:
    let m = match "lib/nginx/modules/ngx_(.*)_module.so" path; in
    if m != null then elem "--with-${head m}_module=dynamic" (flagsOf nh)
    else path == "lib/perl5/auto/nginx/nginx.so" && lastFlag nh "--with-perl_modules_path" == "${out}/lib/perl5";

  goPlain = (pkgsFor { package = { file = ./goapp-file.nix; }; }).armorred.package;

  checks = {
    clangDropsFortify3 = elem "fortify3" (unsupported sets.nginx-locked.stdenv.cc);
    fortify3ReachesClangBuilds = all fortifyOk (lib.attrValues sets);
    lockedNginxHasNoThirdPartyModules = (nl.modules or [ ]) == [ ] && !(any (lib.hasPrefix "--add-module=") (flagsOf nl));
    hardenedNginxNamesItsModules =
      map (m: m.name) (nh.modules or [ ]) == map (m: m.name) nh.armorred.thirdPartyModules
      && all (m: elem "module:${m.name}" nh.armorred.enabledFeatures) (nh.modules or [ ]);
    nginxLayoutMatchesRecipe = layoutOk nh && layoutOk nl;
    hardenedExceptionsNameBuiltModules = exceptionSos != [ ] && all soBuilt exceptionSos;
    hardenedNginxKeepsPerl = any (lib.hasPrefix "--with-perl=") (flagsOf nh);
    redisTestSuiteRuns = sets.redis-hardened.package.doCheck && sets.redis-locked.package.doCheck;
    cetNotClaimed = all (a: !(elem "cet" a.package.armorred.names)) (lib.attrValues sets);
    cfiKeepsLibraryExports = !(lib.hasInfix "-fvisibility=hidden" (cflagsOf sets.redis-locked.package));
    versionsAreNixpkgs = nh.version == pkgs.nginx.version && sets.redis-locked.package.version == pkgs.redis.version;
    packageFileWithoutStdenv = goPlain.pname == "goapp";
  };
in
checks // {
  details = {
    nginxVersion = nh.version;
    redisVersion = sets.redis-locked.package.version;
    clangUnsupported = unsupported sets.nginx-locked.stdenv.cc;
    hardenedModules = map (m: m.name) (nh.modules or [ ]);
    nginxCflags = cflagsOf nh;
  };
}
