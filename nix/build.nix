# The entry point armorred calls (see nix/offline/README.md for details).
#
#   nix-build nix/build.nix --argstr specJson "$SPEC" -A package -A shell --no-out-link
#   nix-instantiate --eval --strict --json nix/build.nix --argstr specJson "$SPEC" -A meta
#
# SPEC = {
#   "packageSet": "offline",            # or "nixpkgs" (Nix >= 2.18, see nix/nixpkgs/README.md)
#   "sourceDir": "/abs/path",           # scripts/fetch-sources.sh DIR
#   "toolchainId": "clang-14.0.6",      # host compiler identity (part of every drv)
#   "package": { "attr": "nginx" } | { "file": "/abs/path/pkg.nix" },
#   "hardening": { "cfi": true, "lto": true, "safestack": true },
#   "drop": ["mail", "stream"],         # features removed from the main package
#   "shell": true, "coreutils": true,   # busybox layer (base hardening)
#   "entrypoint": true,                 # the entrypoint compatibility programs
#                                       # (tier hardening), recipe `[entrypoint_compat]`
#   "nixpkgsOverride": { "withPerl": false }, # packageSet "nixpkgs": .override args
#   "upstreamTests": "ci",              # or "full": the upstream test suites the offline
#                                       # set's builds run (nix/offline/upstream-tests.nix);
#                                       # records in <out>/nix-support/armorred-tests.json
#   "system": "aarch64-linux"           # optional, default builtins.currentSystem: nixpkgs is
#                                       # imported for it (a remote builder of that system builds
#                                       # it); the offline set builds only the host's system
# }
#
# Result attributes:
#   package  the main package built with the tier's hardening and drop list
#   shell    ONLY PRESENT when spec.shell or spec.coreutils is true: busybox
#            (shell+coreutils: "busybox", shell only: "busybox-sh", coreutils
#            only: "busybox-coreutils"). Pass `-A shell` only when requested.
#   entrypoint ONLY PRESENT when spec.entrypoint is true: bin/nginx-entrypoint
#            and bin/redis-entrypoint (nix/offline/entrypoint), built with the
#            tier's hardening. Pass `-A entrypoint` only when requested.
#   meta     { name version hardening features enabledFeatures droppedFeatures
#              unavailableFeatures cflags ldflags licenses dependencies
#              toolchainId packageSet shell }
{ specJson ? null
, spec ? (if specJson == null
          then throw "armorred: nix/build.nix needs --argstr specJson '<JSON>'"
          else builtins.fromJSON specJson)
  # packageSet "nixpkgs" only: a nixpkgs tree instead of the flake.lock pin
  # (the tests pass a stand-in: --arg nixpkgs ./nix/tests/fake-nixpkgs)
, nixpkgs ? null
}:
let
  packageSet = spec.packageSet or "offline";
  drop = spec.drop or [ ];
  hardening = spec.hardening or { };
  wantShell = spec.shell or false;
  wantCoreutils = spec.coreutils or false;
  wantEntrypoint = spec.entrypoint or false;
  system = spec.system or builtins.currentSystem;

  set = import ./offline {
    inherit hardening drop;
    upstreamTests = spec.upstreamTests or "ci";
    sourceDir = spec.sourceDir or null;
    toolchainId = spec.toolchainId or "clang-14";
  };

  mainAttrs = [ "nginx" "redis" "busybox" "zlib" "pcre2" "openssl" "glibc" ];
  pkgSpec = spec.package or (throw "armorred: spec.package is required ({\"attr\": ...} or {\"file\": ...})");
  raw =
    if pkgSpec ? attr then
      (if builtins.elem pkgSpec.attr mainAttrs then set.${pkgSpec.attr}
       else throw "armorred: unknown package attr '${pkgSpec.attr}' in the offline set (known: ${builtins.concatStringsSep ", " mainAttrs})")
    else if pkgSpec ? file then
      (if builtins.substring 0 1 pkgSpec.file != "/"
       then throw "armorred: package.file must be an absolute path, got '${pkgSpec.file}'"
       else set.callPackage pkgSpec.file { })
    else throw "armorred: spec.package needs `attr` or `file`";

  # Generic drop validation against whatever features the package declares:
  # also rejects a non-empty drop for packages without optional features.
  r = set.lib.resolveFeatures {
    pname = raw.pname or raw.name;
    features = raw.features or [ ];
    unavailable = raw.unavailableFeatures or [ ];
    inherit drop;
  };
  package = builtins.seq (builtins.deepSeq r.enabled null) raw;

  shell =
    if wantShell && wantCoreutils then set.base.busybox
    else if wantShell then set.base.busybox-sh
    else if wantCoreutils then set.base.busybox-coreutils
    else null;

  meta = {
    name = package.pname or package.name;
    version = package.version or "";
    hardening = package.hardeningNames or [ ];
    features = package.features or [ ];
    enabledFeatures = package.enabledFeatures or r.enabled;
    droppedFeatures = package.droppedFeatures or r.dropped;
    unavailableFeatures = package.unavailableFeatures or [ ];
    cflags = package.cflags or "";
    ldflags = package.ldflags or "";
    licenses = package.licenses or [ ];
    # runtime library dependencies of the main package (all base-hardened)
    dependencies = map
      (d: { name = d.pname or d.name; version = d.version or ""; licenses = d.licenses or [ ]; })
      (set.lib.unique ((package.deps or [ ]) ++ [ set.glibc ]));
    toolchainId = set.toolchainId;
    inherit packageSet;
    shell = if shell == null then null else shell.pname;
  };
in
if packageSet == "offline" && system != builtins.currentSystem then
  throw "armorred: the offline package set compiles with this machine's clang and glibc, so it builds only ${builtins.currentSystem}, not ${system}; use packageSet \"nixpkgs\" with a remote builder for ${system}"
else if packageSet == "offline" then
  { inherit package meta; } // (if shell == null then { } else { inherit shell; })
  // (if wantEntrypoint then { inherit (set) entrypoint; } else { })
else if packageSet == "nixpkgs" then
  import ./nixpkgs/build.nix { inherit spec nixpkgs system; }
else
  throw "armorred: unknown packageSet '${packageSet}' (known: offline, nixpkgs)"
