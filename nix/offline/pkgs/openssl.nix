# OpenSSL 3: shared libraries and headers only (no apps, tests, docs, engines
# or provider modules are installed). The test programs are built in the
# build tree only, to run upstream's suite on these libraries.
{ mkHardened, sources, hardening, tests }:
let
  # The CI subset: the EVP layer (every algorithm's known-answer vectors and
  # the KDFs), TLS handshakes over every protocol version and option
  # (ssl_new), libssl's API (sslapi) and the X.509 family (parsing, time,
  # chain verification, key/cert matching). Each recipe is listed with the
  # test programs it runs, so only those are compiled.
  ciTests = {
    test_evp = [ "test/evp_test" ];
    test_evp_kdf = [ "test/evp_kdf_test" ];
    test_ssl_new = [ "test/ssl_test" ];
    test_sslapi = [ "test/sslapitest" "test/fips_version_test" "test/ssl_handshake_rtt_test" ];
    test_x509 = [ "apps/openssl" "test/v3ext" "test/x509_test" ];
    test_x509_check_cert_pkey = [ "test/x509_check_cert_pkey_test" ];
    test_x509_time = [ "test/x509_time_test" ];
    test_verify_extra = [ "test/verify_extra_test" ];
  };
  ciNames = builtins.attrNames ciTests;
  ciPrograms = builtins.concatLists (map (n: ciTests.${n}) ciNames);
  testCommand =
    if tests.full then
      ''make -j"$NIX_BUILD_CORES" test HARNESS_JOBS="$NIX_BUILD_CORES"''
    else
      ''make -j"$NIX_BUILD_CORES" ${builtins.concatStringsSep " " ciPrograms} build_modules_nodep link-utils && make run_tests TESTS="${builtins.concatStringsSep " " ciNames}" HARNESS_JOBS="$NIX_BUILD_CORES"'';
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
  postInstall = tests.run {
    package = "openssl";
    inherit (sources.openssl) version;
    suite = "make test";
    scope = if tests.full then "full" else "TESTS=${builtins.concatStringsSep " " ciNames}";
    parser = "tap";
    command = testCommand;
  };
  passthru = { upstreamTests = { inherit ciNames; }; };
}
