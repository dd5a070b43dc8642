# PCRE2, 8-bit library only, no JIT (simpler W^X story), no tools.
{ mkHardened, sources, hardening, tests }:
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
  # The whole suite in seconds: RunTest (pcre2test over every testdata file
  # this configuration supports; the JIT and 16/32-bit ones are not built),
  # RunGrepTest and the POSIX wrapper's test, against the library above.
  postInstall = tests.run {
    package = "pcre2";
    inherit (sources.pcre2) version;
    suite = "make check";
    scope = "full";
    parser = "automake";
    command = ''make -j"$NIX_BUILD_CORES" check'';
  };
}
