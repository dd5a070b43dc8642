# libpng 1.6 (for libgd): shared library and headers only.
{ mkHardened, sources, hardening, zlib }:
mkHardened {
  pname = "libpng";
  inherit (sources.libpng) version;
  src = sources.libpng.src;
  inherit hardening;
  licenses = [ "Libpng" ];
  kind = "lib";
  deps = [ zlib ];
  env = { CPPFLAGS = "-I${zlib}/include"; };
  preConfigure = ''LDFLAGS="$LDFLAGS -L${zlib}/lib"'';
  configurePhase = ''
    ./configure --prefix="$out" --disable-static --enable-shared --disable-tests
  '';
  buildPhase = ''make -j"$NIX_BUILD_CORES" libpng16.la'';
  installPhase = ''
    make install-libLTLIBRARIES install-pkgincludeHEADERS install-nodist_pkgincludeHEADERS install-pkgconfigDATA
    make install-header-links install-library-links install-libpng-pc
    rm -rf "$out/share" "$out"/lib/*.a
  '';
}
