{ mkHardened, sources, hardening }:
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
  # only the libraries (no example/minigzip test programs)
  buildPhase = ''make -j"$NIX_BUILD_CORES" libz.a libz.so.${sources.zlib.version}'';
  installPhase = ''
    make install
    rm -f "$out"/lib/*.a
    rm -rf "$out/share"
  '';
}
