# The runtime layout the recipes expect (`[runtime.links]` in recipes/*.toml),
# for nixpkgs packages whose own layout differs. One recipe serves both sets,
# so the package set adapts, not the recipe:
#
#   import ./layout.nix { cfi; } -> { <pname> = old: { overrideAttrs changes }; }
#
# nginx (nixpkgs' generic.nix: --sbin-path=bin/nginx, logs and pid under
# /var/log/nginx, conf/nginx.conf, html/, modules built in) is configured to
# the layout of the offline set's nix/offline/pkgs/nginx.nix:
#   bin/nginx, etc/nginx/{nginx.conf,mime.types}, lib/nginx/modules/*.so
#   (`load_module modules/x.so` works through $out/modules and
#   etc/nginx/modules), share/nginx/html, error log on stderr, access log on
#   stdout, pid and lock and temp files in /tmp (read-only root file system),
#   and the port-8080 nginx.conf. That file, ./nginx.conf, is the offline
#   set's configuration with @out@ for its store path; tests/it/nix_exprs.rs
#   fails when the two differ, so a change to one must be made to both.
# The modules the offline set builds as dynamic modules are dynamic here too
# (the hardened tier's `load_module` and its exceptions name their .so files).
{ cfi ? false }:
let
  u = import ./util.nix;
  inherit (builtins) filter map match head elem any concatStringsSep;
  out = builtins.placeholder "out";

  # feature -> the module flag stem, as in nix/offline/pkgs/nginx.nix
  dynamic = [ "http_perl" "http_xslt" "http_image_filter" "http_geoip" "stream_geoip" ];
  moduleOf = f: let m = match "--with-([a-z0-9_]+)_module(=dynamic)?" f; in if m == null then null else head m;

  # flags generic.nix sets that the layout replaces (a later flag would win
  # in nginx's configure too; removing them keeps the list unambiguous)
  replaced = [
    "--sbin-path=" "--conf-path=" "--modules-path=" "--error-log-path=" "--http-log-path="
    "--pid-path=" "--lock-path=" "--http-client-body-temp-path=" "--http-proxy-temp-path="
    "--http-fastcgi-temp-path=" "--http-uwsgi-temp-path=" "--http-scgi-temp-path="
    "--with-perl_modules_path="
  ];
  isReplaced = f: any (p: u.hasPrefix p f) replaced;

  conf = builtins.replaceStrings [ "@out@" ] [ out ] (builtins.readFile ./nginx.conf);
  # the default server, in conf.d as the official layout has it (nginx.conf
  # includes /etc/nginx/conf.d/*.conf, which the image makes writable)
  defaultConf = builtins.replaceStrings [ "@out@" ] [ out ] (builtins.readFile ./default.conf);
in
{
  nginx = old:
    let
      flags0 = u.toList (old.configureFlags or [ ]);
      withPerl = any (f: u.hasPrefix "--with-perl=" f) flags0;
      kept = map
        (f: if elem (moduleOf f) dynamic && f == "--with-${moduleOf f}_module" then "${f}=dynamic" else f)
        (filter (f: !(isReplaced f)) flags0);
      dynamicKept = filter (m: m != null && elem m dynamic) (map moduleOf kept);
      cfiCheck =
        if cfi && dynamicKept != [ ] then
          throw "armorred: nginx: Clang CFI cannot cover dynamic modules; drop ${concatStringsSep ", " dynamicKept} in this tier or turn cfi off"
        else null;
    in
    builtins.seq cfiCheck {
      configureFlags = kept ++ [
        "--sbin-path=${out}/bin/nginx"
        "--conf-path=${out}/etc/nginx/nginx.conf"
        "--modules-path=${out}/lib/nginx/modules"
        "--error-log-path=/dev/stderr"
        "--http-log-path=/dev/stdout"
        "--pid-path=/tmp/nginx.pid"
        "--lock-path=/tmp/nginx.lock"
        "--http-client-body-temp-path=/tmp/client_temp"
        "--http-proxy-temp-path=/tmp/proxy_temp"
        "--http-fastcgi-temp-path=/tmp/fastcgi_temp"
        "--http-uwsgi-temp-path=/tmp/uwsgi_temp"
        "--http-scgi-temp-path=/tmp/scgi_temp"
      ] ++ u.optional withPerl "--with-perl_modules_path=${out}/lib/perl5";
      postInstall = (old.postInstall or "") + ''
        # armorred: the recipes' runtime layout
        mkdir -p "$out/share/nginx" "$out/lib/nginx/modules"
        if [ -d "$out/html" ]; then mv "$out/html" "$out/share/nginx/html"; fi
        cat > "$out/etc/nginx/nginx.conf" <<'ARMORRED_NGINX_CONF'
        ${conf}
        ARMORRED_NGINX_CONF
        mkdir -p "$out/etc/nginx/conf.d"
        cat > "$out/etc/nginx/conf.d/default.conf" <<'ARMORRED_NGINX_DEFAULT'
        ${defaultConf}
        ARMORRED_NGINX_DEFAULT
        ln -s lib/nginx/modules "$out/modules"
        ln -s ../../lib/nginx/modules "$out/etc/nginx/modules"
      '' + u.optionalString withPerl ''
        # MakeMaker installs the embedded Perl's half (nginx.pm, auto/nginx/nginx.so)
        # under lib/perl5/<archname>/; nginx adds only --with-perl_modules_path
        # to @INC, so move it there (where the offline set puts it too)
        for pm in $(find "$out/lib/perl5" -mindepth 2 -name nginx.pm); do mv "$pm" "$out/lib/perl5/nginx.pm"; done
        so=$(find "$out/lib/perl5" -mindepth 3 -path '*/auto/nginx/nginx.so' | head -n 1)
        if [ -n "$so" ]; then
          mkdir -p "$out/lib/perl5/auto/nginx"
          mv "$so" "$out/lib/perl5/auto/nginx/nginx.so"
        fi
      '' + ''
        # every dynamic module loads into this binary, with the shipped configuration
        t="$NIX_BUILD_TOP/armorred-modtest"
        mkdir -p "$t"
        for m in "$out"/lib/nginx/modules/*.so; do
          if [ -e "$m" ]; then echo "load_module $m;"; fi
        done > "$t/nginx.conf"
        # temp paths inside the build directory: the build sandbox may have no /tmp
        {
          echo 'events {}'
          echo 'http {'
          for p in client_body proxy fastcgi uwsgi scgi; do echo "  ''${p}_temp_path $t/$p;"; done
          echo '  server { listen 127.0.0.1:18080; }'
          echo '}'
        } >> "$t/nginx.conf"
        "$out/bin/nginx" -t -p "$t" -c "$t/nginx.conf" -e stderr
      '';
    };
}
