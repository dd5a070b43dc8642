# nginx 1.26 built from the upstream tarball (plus Debian's security patches)
# with the tier's hardening.
# `features` are the optional modules of the official nginx docker image that
# build here (plus a few default-on modules that can be compiled out with
# --without-*); everything in `features` is built unless named in `drop`.
{ mkHardened, sources, lib, hardening, drop, zlib, pcre2, openssl
, perl, libxml2, libxslt, libgd, geoip }:
let
  # feature name -> configure flags when ENABLED (off by default in nginx)
  withModules = {
    compat = [ "--with-compat" ];
    http_ssl = [ "--with-http_ssl_module" ];
    http_v2 = [ "--with-http_v2_module" ];
    # HTTP/3 over QUIC, as the official 1.26 image has it; with OpenSSL 3.5
    # nginx uses its OpenSSL compatibility layer for QUIC.
    http_v3 = [ "--with-http_v3_module" ];
    http_realip = [ "--with-http_realip_module" ];
    http_addition = [ "--with-http_addition_module" ];
    http_sub = [ "--with-http_sub_module" ];
    http_dav = [ "--with-http_dav_module" ];
    http_flv = [ "--with-http_flv_module" ];
    http_mp4 = [ "--with-http_mp4_module" ];
    http_gunzip = [ "--with-http_gunzip_module" ];
    http_gzip_static = [ "--with-http_gzip_static_module" ];
    http_auth_request = [ "--with-http_auth_request_module" ];
    http_random_index = [ "--with-http_random_index_module" ];
    http_secure_link = [ "--with-http_secure_link_module" ];
    http_slice = [ "--with-http_slice_module" ];
    http_stub_status = [ "--with-http_stub_status_module" ];
    mail = [ "--with-mail" "--with-mail_ssl_module" ];
    stream = [ "--with-stream" "--with-stream_ssl_module" "--with-stream_realip_module" "--with-stream_ssl_preread_module" ];
  };
  # feature name -> configure flag when DROPPED (on by default in nginx)
  withoutModules = {
    http_autoindex = "--without-http_autoindex_module";
    http_ssi = "--without-http_ssi_module";
    http_userid = "--without-http_userid_module";
    http_empty_gif = "--without-http_empty_gif_module";
    http_browser = "--without-http_browser_module";
    http_geo = "--without-http_geo_module";
    http_map = "--without-http_map_module";
    http_split_clients = "--without-http_split_clients_module";
    http_referer = "--without-http_referer_module";
    http_memcached = "--without-http_memcached_module";
    http_fastcgi = "--without-http_fastcgi_module";
    http_uwsgi = "--without-http_uwsgi_module";
    http_scgi = "--without-http_scgi_module";
    http_grpc = "--without-http_grpc_module";
    http_mirror = "--without-http_mirror_module";
    http_charset = "--without-http_charset_module";
  };
  withOrder = [
    "compat" "http_ssl" "http_v2" "http_v3" "http_realip" "http_addition" "http_sub" "http_dav"
    "http_flv" "http_mp4" "http_gunzip" "http_gzip_static" "http_auth_request"
    "http_random_index" "http_secure_link" "http_slice" "http_stub_status" "mail" "stream"
  ];
  withoutOrder = [
    "http_autoindex" "http_ssi" "http_userid" "http_empty_gif" "http_browser" "http_geo"
    "http_map" "http_split_clients" "http_referer" "http_memcached" "http_fastcgi"
    "http_uwsgi" "http_scgi" "http_grpc" "http_mirror" "http_charset"
  ];
  # The official image's dynamic modules (`load_module modules/<name>.so`),
  # built the same way here: feature name -> { flags, deps, include dirs }.
  # Dynamic modules cannot sit behind Clang CFI (a call from nginx into a
  # separately linked .so fails the non-cross-DSO check), so a CFI tier must
  # drop them; the check below says so at evaluation time.
  dynamicModules = {
    http_perl = {
      flags = [ "--with-http_perl_module=dynamic" "--with-perl=${perl}/bin/perl" "--with-perl_modules_path=$out/lib/perl5" ];
      deps = [ perl ];
      includes = [ ];
    };
    http_xslt = {
      flags = [ "--with-http_xslt_module=dynamic" ];
      deps = [ libxml2 libxslt ];
      # <dep>/include is on the path for every dependency; libxml2's
      # headers sit one level down
      includes = [ "${libxml2}/include/libxml2" ];
    };
    http_image_filter = {
      flags = [ "--with-http_image_filter_module=dynamic" ];
      deps = [ libgd ];
      includes = [ ];
    };
    http_geoip = {
      flags = [ "--with-http_geoip_module=dynamic" ]
        ++ lib.optional (builtins.elem "stream" r.enabled) "--with-stream_geoip_module=dynamic";
      deps = [ geoip ];
      includes = [ ];
    };
  };
  dynamicOrder = [ "http_perl" "http_xslt" "http_image_filter" "http_geoip" ];

  # Modules of the official image that are NOT built here (in either tier):
  # njs's sources (Debian's libnginx-mod-js) are not reachable from these
  # machines' source archive mirror. Accepted in `drop` as a no-op so tier
  # definitions can name it.
  unavailable = [ "njs" ];

  features = withOrder ++ withoutOrder ++ dynamicOrder;
  r = lib.resolveFeatures { pname = "nginx"; inherit features unavailable drop; };

  enabledDynamic = builtins.filter (f: builtins.elem f r.enabled) dynamicOrder;
  moduleDeps = lib.concatMap (f: dynamicModules.${f}.deps) enabledDynamic;
  moduleIncludes = lib.concatMap (f: dynamicModules.${f}.includes) enabledDynamic;

  featureFlags =
    lib.concatMap (f: if builtins.elem f r.enabled then withModules.${f} else [ ]) withOrder
    ++ lib.concatMap (f: if builtins.elem f r.dropped then [ withoutModules.${f} ] else [ ]) withoutOrder
    ++ lib.concatMap (f: dynamicModules.${f}.flags) enabledDynamic;

  cfiCheck =
    if (hardening.cfi or false) && enabledDynamic != [ ] then
      throw "armorred: nginx: Clang CFI cannot cover dynamic modules; drop ${builtins.concatStringsSep ", " enabledDynamic} in this tier or turn cfi off"
    else null;
  # Module objects go into shared objects, and nginx compiles them with the
  # same cc-opt as the executable, so they need -fPIC after the tier's -fPIE
  # (the official packages pass -fPIC for the same reason); the executable is
  # still linked -pie.
  picOpt = lib.optional (enabledDynamic != [ ]) "-fPIC";
  deps = [ zlib pcre2 openssl ] ++ moduleDeps;
  depFlags = prefix: suffix: builtins.concatStringsSep " " (map (d: "${prefix}${d}${suffix}") deps);

  configureFlags = [
    "--prefix=$out"
    "--sbin-path=$out/bin/nginx"
    "--modules-path=$out/lib/nginx/modules"
    "--conf-path=/etc/nginx/nginx.conf"
    "--error-log-path=/dev/stderr"
    "--http-log-path=/dev/stdout"
    "--pid-path=/tmp/nginx.pid"
    "--lock-path=/tmp/nginx.lock"
    "--http-client-body-temp-path=/tmp/client_temp"
    "--http-proxy-temp-path=/tmp/proxy_temp"
    "--http-fastcgi-temp-path=/tmp/fastcgi_temp"
    "--http-uwsgi-temp-path=/tmp/uwsgi_temp"
    "--http-scgi-temp-path=/tmp/scgi_temp"
    "--with-threads"
    "--with-file-aio"
    "--with-pcre"
  ] ++ featureFlags;
in
builtins.seq cfiCheck (builtins.seq (builtins.deepSeq r.enabled null) (mkHardened {
  pname = "nginx";
  inherit (sources.nginx) version;
  src = sources.nginx.src;
  inherit hardening;
  licenses = [ "BSD-2-Clause" ];
  inherit deps;
  features = features;
  enabledFeatures = r.enabled;
  droppedFeatures = r.dropped;
  unavailableFeatures = unavailable;
  configurePhase = ''
    ./configure ${builtins.concatStringsSep " " configureFlags} \
      --with-cc=clang \
      --with-cc-opt="$CFLAGS ${depFlags "-I" "/include"} ${builtins.concatStringsSep " " (map (i: "-I${i}") moduleIncludes ++ picOpt)}" \
      --with-ld-opt="$LDFLAGS ${depFlags "-L" "/lib"}"
  '';
  # nginx's `make install` would also write to --conf-path (/etc/nginx on the
  # build host), so install by hand.
  installPhase = ''
    mkdir -p "$out/bin" "$out/etc/nginx" "$out/share/nginx/html"
    cp objs/nginx "$out/bin/nginx"
    cp conf/mime.types "$out/etc/nginx/mime.types"
    # the parameter files the official /etc/nginx has, for `include fastcgi_params;`
    cp conf/fastcgi_params conf/scgi_params conf/uwsgi_params "$out/etc/nginx/"
    # dynamic modules where the official image keeps them: `load_module
    # modules/x.so` resolves against the prefix ($out) and /etc/nginx
    if ls objs/*.so >/dev/null 2>&1; then
      mkdir -p "$out/lib/nginx/modules"
      cp objs/*.so "$out/lib/nginx/modules/"
      ln -s lib/nginx/modules "$out/modules"
      ln -s ../../lib/nginx/modules "$out/etc/nginx/modules"
    fi
    # the embedded Perl module's Perl half (nginx.pm + its XS object), where
    # --with-perl_modules_path points; copied, as MakeMaker's install would
    # also write to perl's own (read-only) store path
    if [ -d objs/src/http/modules/perl/blib ]; then
      mkdir -p "$out/lib/perl5/auto/nginx"
      cp objs/src/http/modules/perl/blib/lib/nginx.pm "$out/lib/perl5/"
      cp objs/src/http/modules/perl/blib/arch/auto/nginx/nginx.so "$out/lib/perl5/auto/nginx/"
    fi
    cp html/index.html html/50x.html "$out/share/nginx/html/"
    # The official layout: nginx.conf includes /etc/nginx/conf.d/*.conf,
    # where the default server ships and where the entrypoint writes
    # rendered templates. The image makes /etc/nginx a real directory whose
    # conf.d is writable (or a mount point), with these files linked in.
    # No `worker_processes` here: this file lives in the read-only store, so
    # the entrypoint passes it with -g (`auto` as the official nginx.conf
    # has, or the auto-tuned count), and a duplicate would be refused.
    mkdir -p "$out/etc/nginx/conf.d"
    cat > "$out/etc/nginx/nginx.conf" <<EOF
    # armorred default nginx configuration: runs as any non-root UID with a
    # read-only root file system (only /tmp must be writable).
    # worker_processes comes from the entrypoint (-g), see nginx.nix.
    pid /tmp/nginx.pid;
    error_log /dev/stderr notice;

    events {
        worker_connections 1024;
    }

    http {
        include $out/etc/nginx/mime.types;
        default_type application/octet-stream;
        access_log /dev/stdout;
        sendfile on;
        keepalive_timeout 65;

        include /etc/nginx/conf.d/*.conf;
    }
    EOF
    sed -i 's/^    //' "$out/etc/nginx/nginx.conf"
    # the entrypoint's IPv6 step recognises this file's listen line
    cat > "$out/etc/nginx/conf.d/default.conf" <<EOF
    server {
        listen       8080;
        server_name  localhost;
        root $out/share/nginx/html;
        index index.html;
        error_page 500 502 503 504 /50x.html;
    }
    EOF
  '';
  postInstall = ''
    # smoke test: the binary starts with the store glibc (temp paths are
    # compiled in under /tmp; `nginx -t` is left to the image tests)
    "$out/bin/nginx" -V
    # every dynamic module loads into this binary (symbols, libraries)
    if [ -d "$out/lib/nginx/modules" ]; then
      t="$NIX_BUILD_TOP/modtest"
      mkdir -p "$t"
      for m in "$out"/lib/nginx/modules/*.so; do echo "load_module $m;"; done > "$t/nginx.conf"
      printf 'events {}\nhttp { server { listen 127.0.0.1:18080; } }\n' >> "$t/nginx.conf"
      "$out/bin/nginx" -t -p "$t" -c "$t/nginx.conf" -e stderr
    fi
  '' + (if enabledDynamic != [ ] then "" else ''
    # A tier without dynamic modules keeps the (empty) modules directory of
    # the official image, so the recipe's /usr/lib/nginx/modules link resolves.
    mkdir -p "$out/lib/nginx/modules"
  '');
  passthru = { inherit configureFlags enabledDynamic; };
}))
