# libxml2 (for libxslt and nginx's XSLT filter module): shared library and
# headers; no Python bindings, no lzma/ICU (they would pull in more host-free
# dependencies), zlib from the store.
{ mkHardened, sources, hardening, zlib }:
mkHardened {
  pname = "libxml2";
  inherit (sources.libxml2) version;
  src = sources.libxml2.src;
  inherit hardening;
  licenses = [ "MIT" ];
  kind = "lib";
  deps = [ zlib ];
  configurePhase = ''
    ./configure --prefix="$out" --disable-static --enable-shared \
      --without-python --without-lzma --without-icu --without-readline \
      --without-history --with-zlib="${zlib}"
  '';
  installPhase = ''
    make install
    # keep xml2-config (libxslt's configure asks it); drop the tools, docs and
    # the cmake/aclocal files
    rm -f "$out/bin/xmllint" "$out/bin/xmlcatalog"
    rm -rf "$out/share" "$out"/lib/*.a "$out/lib/cmake" "$out"/lib/xml2Conf.sh
  '';
}
