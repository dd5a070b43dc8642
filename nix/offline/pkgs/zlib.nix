{ mkHardened, sources, hardening, tests }:
mkHardened {
  pname = "zlib";
  inherit (sources.zlib) version;
  src = sources.zlib.src;
  inherit hardening;
  licenses = [ "Zlib" ];
  kind = "lib";
  configurePhase = ''
    ./configure --prefix="$out" --shared
  '';
  # only the libraries (the example/minigzip test programs are built by the
  # suite below, in the build tree)
  buildPhase = ''make -j"$NIX_BUILD_CORES" libz.a libz.so.${sources.zlib.version}'';
  installPhase = ''
    make install
    rm -f "$out"/lib/*.a
    rm -rf "$out/share"
  '';
  # zlib's whole suite takes seconds: `make test` (compress/inflate round
  # trips and example.c's API tests against the static, shared and 64-bit
  # offset builds) and infcover (inflate's code-coverage test).
  postInstall = tests.run {
    package = "zlib";
    inherit (sources.zlib) version;
    suite = "make test";
    scope = "full";
    parser = "zlib";
    command = "make test";
  } + "\n" + tests.run {
    package = "zlib";
    inherit (sources.zlib) version;
    suite = "infcover";
    scope = "full";
    parser = "exit";
    command = "make infcover && ./infcover";
  };
}
