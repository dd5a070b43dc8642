# GD (for nginx's image_filter module) with PNG, JPEG and GIF (built in);
# no fonts, WebP, TIFF, AVIF/HEIF or X pixmaps.
{ mkHardened, sources, hardening, zlib, libpng, libjpeg }:
mkHardened {
  pname = "libgd";
  inherit (sources.libgd) version;
  src = sources.libgd.src;
  inherit hardening;
  licenses = [ "GD" ];
  kind = "lib";
  deps = [ zlib libpng libjpeg ];
  env = { PKG_CONFIG_LIBDIR = "${libpng}/lib/pkgconfig"; };
  configurePhase = ''
    ./configure --prefix="$out" --disable-static --enable-shared \
      --with-zlib="${zlib}" --with-png="${libpng}" --with-jpeg="${libjpeg}" \
      --without-freetype --without-fontconfig --without-raqm --without-x \
      --without-xpm --without-tiff --without-webp --without-avif \
      --without-heif --without-liq
  '';
  buildPhase = ''make -j"$NIX_BUILD_CORES" -C src libgd.la'';
  installPhase = ''
    make -C src install-libLTLIBRARIES install-includeHEADERS
    rm -rf "$out/bin" "$out"/lib/*.a
  '';
  postInstall = ''
    # the formats image_filter serves must really be there
    for sym in gdImageCreateFromJpegPtr gdImageCreateFromPngPtr gdImageCreateFromGifPtr; do
      nm -D "$out"/lib/libgd.so | grep -q " T $sym" || { echo "libgd lacks $sym" >&2; exit 1; }
    done
  '';
}
