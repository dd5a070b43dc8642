# libjpeg-turbo (the libjpeg62 API, as Debian's libjpeg62-turbo) for libgd.
# Built without SIMD: its assembly needs nasm, which these machines lack.
{ mkHardened, sources, hardening }:
mkHardened {
  pname = "libjpeg-turbo";
  inherit (sources.libjpeg-turbo) version;
  src = sources.libjpeg-turbo.src;
  inherit hardening;
  licenses = [ "IJG" "BSD-3-Clause" "Zlib" ];
  kind = "lib";
  # CMake reads CFLAGS/LDFLAGS from the environment; an empty build type
  # keeps it from adding its own -O3.
  configurePhase = ''
    mkdir build && cd build
    cmake .. -DCMAKE_INSTALL_PREFIX="$out" -DCMAKE_INSTALL_LIBDIR=lib \
      -DCMAKE_BUILD_TYPE= -DENABLE_STATIC=OFF -DENABLE_SHARED=ON \
      -DWITH_SIMD=OFF -DWITH_TURBOJPEG=OFF -DWITH_JAVA=OFF \
      -DCMAKE_AR=/usr/bin/llvm-ar-14 -DCMAKE_RANLIB=/usr/bin/llvm-ranlib-14 \
      -DCMAKE_SKIP_INSTALL_RPATH=ON
  '';
  buildPhase = ''make -j"$NIX_BUILD_CORES" jpeg'';
  installPhase = ''
    mkdir -p "$out/lib" "$out/include"
    cp -P libjpeg.so* "$out/lib/"
    cp jconfig.h ../jerror.h ../jmorecfg.h ../jpeglib.h "$out/include/"
  '';
}
