# OpenSSL 3: shared libraries and headers only (no apps, tests, docs, engines
# or provider modules are installed).
{ mkHardened, sources, hardening, tests }:
let
  # The CI subset of OpenSSL's own suite (test/recipes, run by
  # test/run_tests.pl): the EVP and KDF test vectors, the TLS state machine
  # and API (ssl_new, ssl_old, sslapi, TLS 1.3 messages), certificate
  # verification and X.509, OCSP and CMS, the public-key algorithms (RSA,
  # EC, ECDSA, bignum), digests, ciphers, PEM/ASN.1 decoding and the DRBG:
  # what nginx and redis call. About 80 s on 2 cores.
  ciTests = [
    "test_evp" "test_evp_kdf" "test_evp_pkey_provided" "test_ssl_new" "test_ssl_old"
    "test_sslapi" "test_tls13messages" "test_verify" "test_x509"
    "test_x509_check_cert_pkey" "test_x509_time" "test_ocsp" "test_cms" "test_ca"
    "test_req" "test_rand" "test_pkey" "test_rsa" "test_ec" "test_ecdsa" "test_bn"
    "test_sha" "test_dgst" "test_enc" "test_pem_reading" "test_asn1_decode"
    "test_internal_ctype"
  ];
  testsArg = if tests.full then "" else "TESTS=\"${builtins.concatStringsSep " " ciTests}\" ";
in
mkHardened {
  pname = "openssl";
  inherit (sources.openssl) version;
  src = sources.openssl.src;
  inherit hardening;
  licenses = [ "Apache-2.0" ];
  kind = "lib";
  configurePhase = ''
    perl ./Configure linux-x86_64 --prefix="$out" --libdir=lib \
      --openssldir=/etc/ssl shared no-static-engine
  '';
  buildPhase = ''make -j"$NIX_BUILD_CORES" build_libs'';
  installPhase = ''
    make install_dev
    rm -f "$out"/lib/*.a
    rm -rf "$out/share"
  '';
  # The suite runs on the libraries just installed, from the build tree that
  # produced them (test/run_tests.pl puts the tree's libcrypto/libssl first
  # on the library path). The test programs, the `openssl` app the recipes
  # drive and the legacy provider are built here, after the install, and none
  # of them is installed.
  postInstall = ''
    make -j"$NIX_BUILD_CORES" build_programs build_modules
  '' + tests.run {
    package = "openssl";
    inherit (sources.openssl) version;
    suite = "make test";
    scope = if tests.full then "full" else "TESTS=${builtins.concatStringsSep " " ciTests}";
    parser = "tap";
    command = "${testsArg}HARNESS_JOBS=\"$NIX_BUILD_CORES\" V=0 make test";
  };
  passthru = { upstreamTests = { inherit ciTests; }; };
}
