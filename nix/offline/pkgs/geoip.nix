# The legacy MaxMind GeoIP C library (nginx's geoip modules link it). Library
# and headers only; databases are the user's to mount, as with the official
# image.
{ mkHardened, sources, hardening }:
mkHardened {
  pname = "geoip";
  inherit (sources.geoip) version;
  src = sources.geoip.src;
  inherit hardening;
  licenses = [ "LGPL-2.1-or-later" ];
  kind = "lib";
  # the release tarball is a git snapshot: generate configure first
  preConfigure = "autoreconf -fi";
  configurePhase = ''
    ./configure --prefix="$out" --disable-static --enable-shared
  '';
  buildPhase = ''make -j"$NIX_BUILD_CORES" -C libGeoIP'';
  installPhase = ''
    make -C libGeoIP install
  '';
}
