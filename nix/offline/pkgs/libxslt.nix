# libxslt + libexslt (nginx's XSLT filter module links both).
{ mkHardened, sources, hardening, libxml2 }:
mkHardened {
  pname = "libxslt";
  inherit (sources.libxslt) version;
  src = sources.libxslt.src;
  inherit hardening;
  licenses = [ "MIT" ];
  kind = "lib";
  deps = [ libxml2 ];
  env = { PKG_CONFIG_LIBDIR = "${libxml2}/lib/pkgconfig"; };
  configurePhase = ''
    ./configure --prefix="$out" --disable-static --enable-shared \
      --with-libxml-prefix="${libxml2}" --without-python --without-crypto \
      --without-debugger --without-profiler
  '';
  installPhase = ''
    make install
    rm -rf "$out/bin" "$out/share" "$out/lib/xsltConf.sh" "$out"/lib/*.a
  '';
}
