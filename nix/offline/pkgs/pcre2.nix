# PCRE2, 8-bit library only, no JIT (simpler W^X story), no tools.
{ mkHardened, sources, hardening }:
mkHardened {
  pname = "pcre2";
  inherit (sources.pcre2) version;
  src = sources.pcre2.src;
  inherit hardening;
  licenses = [ "BSD-3-Clause" ];
  kind = "lib";
  configurePhase = ''
    ./configure --prefix="$out" --disable-static --enable-shared \
      --enable-pcre2-8 --disable-pcre2-16 --disable-pcre2-32 --disable-jit \
      --disable-pcre2grep-libz --disable-pcre2grep-libbz2 \
      --disable-pcre2test-libedit --disable-pcre2test-libreadline
  '';
  buildPhase = ''make -j"$NIX_BUILD_CORES" libpcre2-8.la libpcre2-posix.la'';
  installPhase = ''
    make install-libLTLIBRARIES install-includeHEADERS install-nodist_includeHEADERS install-pkgconfigDATA
    rm -rf "$out/share" "$out/bin"
  '';
}
