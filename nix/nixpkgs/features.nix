# Optional compile-time features of the packages armorred knows in nixpkgs,
# read from the derivation's own flags (so they follow the pinned nixpkgs), and
# how a `drop` list removes them.
#
#   family.features attrs   features present in a derivation's attrs
#   family.known            names accepted in `drop`
#   family.unavailable      accepted in `drop`, never built (no-ops)
#   family.args drop pkg    `.override` arguments for the drop list
#   family.attrs drop old   `overrideAttrs` changes for the dropped names
#   family.buildOnly attrs  build inputs (pnames) that never reach the image
#   family.forwardsArgs     `.override` takes more than lib.functionArgs shows
#                           (a `...` that forwards to the real function)
#
# nginx (pkgs/servers/http/nginx/generic.nix): `--with-<name>_module` flags in
# configureFlags (stream_* and mail_* fold into "stream" and "mail"), plus the
# modules nginx builds unless `--without-<name>_module` is given. Where
# generic.nix has an argument (withMail, withStream, withPerl, withSlice,
# withImageFilter, withGeoIP) it is set from the drop list: true unless the
# feature is dropped, so nixpkgs' nginx builds what the offline set builds
# (all-packages.nix calls nginxStable with withPerl = false, and generic.nix
# leaves mail, slice, image_filter and geoip off), and a dropped module takes
# its dependency (perl, gd, geoip) with it. Every other module is removed
# from / added to configureFlags.
#
# Third-party modules (all-packages.nix: nginxStable gets `modules = [
# nginxModules.rtmp nginxModules.dav nginxModules.moreheaders ]`, built in
# with --add-module) are features named `module:<name>`, so they show in the
# feature list and can be dropped one by one; a recipe's nixpkgs_override
# `modules = [ "rtmp" ]` names the nginxModules to keep (`[ ]`: none).
#
# redis (pkgs/by-name/re/redis/package.nix): tls (tlsSupport, BUILD_TLS=yes),
# systemd (withSystemd, USE_SYSTEMD=yes), jemalloc (MALLOC=libc when dropped).
let
  u = import ./util.nix;
  inherit (builtins) elem filter map match head attrNames listToAttrs;

  nginxDefaultOn = [
    "http_autoindex" "http_ssi" "http_userid" "http_empty_gif" "http_browser"
    "http_geo" "http_map" "http_split_clients" "http_referer" "http_memcached"
    "http_fastcgi" "http_uwsgi" "http_scgi" "http_grpc" "http_mirror" "http_charset"
  ];
  nginxArgs = {
    mail = "withMail";
    stream = "withStream";
    http_perl = "withPerl";
    http_slice = "withSlice";
    http_image_filter = "withImageFilter";
    http_geoip = "withGeoIP";
  };
  fold = n:
    if u.hasPrefix "stream_" n then "stream"
    else if u.hasPrefix "mail_" n then "mail"
    else n;
  withName = f:
    let m = match "--with-([a-z0-9_]+)_module(=dynamic)?" f; in
    if m != null then (if head m == "stream_geoip" then "http_geoip" else fold (head m))
    else if f == "--with-stream" then "stream"
    else if f == "--with-mail" then "mail"
    else if u.hasPrefix "--with-perl=" f || u.hasPrefix "--with-perl_modules_path=" f then "http_perl"
    else null;

  modulesOf = attrs: u.toList (attrs.modules or attrs.passthru.modules or [ ]);
  moduleFeature = m: "module:${m.name or "unnamed"}";

  nginx = rec {
    features = attrs:
      let flags = u.toList (attrs.configureFlags or [ ]);
      in u.unique (filter (x: x != null) (map withName flags))
        ++ filter (m: !(elem "--without-${m}_module" flags)) nginxDefaultOn
        ++ map moduleFeature (modulesOf attrs);
    unavailable = [ "njs" ];
    known = attrs: u.unique (features attrs ++ nginxDefaultOn ++ attrNames nginxArgs ++ unavailable);
    args = drop: pkg:
      listToAttrs (map (n: { name = nginxArgs.${n}; value = !(elem n drop); }) (attrNames nginxArgs))
      // u.optionalAttrs (builtins.any (d: u.hasPrefix "module:" d) drop) {
        modules = filter (m: !(elem (moduleFeature m) drop)) (modulesOf pkg);
      };
    # generic.nix keeps perl in buildInputs whatever withPerl says; without
    # --with-perl it is only a configure-time tool
    buildOnly = attrs:
      if builtins.any (f: u.hasPrefix "--with-perl=" f) (u.toList (attrs.configureFlags or [ ])) then [ ] else [ "perl" ];
    forwardsArgs = true;
    attrs = drop: old:
      let flags = u.toList (old.configureFlags or [ ]);
      in {
        configureFlags =
          filter (f: !(elem (withName f) drop)) flags
          ++ map (m: "--without-${m}_module")
            (filter (m: elem m nginxDefaultOn && !(elem "--without-${m}_module" flags)) drop);
      };
  };

  redis = {
    features = attrs:
      let mf = u.toList (attrs.makeFlags or [ ]);
      in u.optional (elem "BUILD_TLS=yes" mf) "tls"
        ++ u.optional (elem "USE_SYSTEMD=yes" mf) "systemd"
        ++ u.optional (!(elem "MALLOC=libc" mf)) "jemalloc";
    unavailable = [ ];
    known = _: [ "tls" "systemd" "jemalloc" ];
    buildOnly = _: [ ];
    forwardsArgs = false;
    args = drop: _:
      u.optionalAttrs (elem "tls" drop) { tlsSupport = false; }
      // u.optionalAttrs (elem "systemd" drop) { withSystemd = false; }
      // u.optionalAttrs (elem "jemalloc" drop) { useSystemJemalloc = false; };
    attrs = drop: old:
      u.optionalAttrs (elem "jemalloc" drop) {
        makeFlags = u.toList (old.makeFlags or [ ]) ++ [ "MALLOC=libc" ];
      };
  };

  # any other package; a package.file made with armorred.mkHardened declares
  # its own features (passthru) and has applied the drop list itself
  generic = {
    features = attrs: attrs.enabledFeatures or attrs.passthru.enabledFeatures or [ ];
    unavailable = [ ];
    known = attrs: (attrs.features or [ ]) ++ (attrs.unavailableFeatures or [ ]);
    args = _: _: { };
    attrs = _: _: { };
    buildOnly = _: [ ];
    forwardsArgs = false;
  };
in
{
  inherit nginxDefaultOn;
  families = { inherit nginx redis; };
  # the feature table for a package, by pname
  for = pname: { nginx = nginx; redis = redis; }.${pname} or generic;
}
