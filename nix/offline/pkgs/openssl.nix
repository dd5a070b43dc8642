# OpenSSL 3: shared libraries and headers only (no apps, tests, docs, engines
# or provider modules are installed).
{ mkHardened, sources, hardening }:
mkHardened {
  pname = "openssl";
  inherit (sources.openssl) version;
  src = sources.openssl.src;
  inherit hardening;
  licenses = [ "Apache-2.0" ];
  kind = "lib";
  configurePhase = ''
    perl ./Configure linux-x86_64 --prefix="$out" --libdir=lib \
      --openssldir=/etc/ssl shared no-tests no-static-engine
  '';
  buildPhase = ''make -j"$NIX_BUILD_CORES" build_libs'';
  installPhase = ''
    make install_dev
    rm -f "$out"/lib/*.a
    rm -rf "$out/share"
  '';
}
