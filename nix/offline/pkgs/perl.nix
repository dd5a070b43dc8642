# Perl 5 with a shared libperl, for nginx's embedded Perl module (the official
# nginx:perl image's `load_module modules/ngx_http_perl_module.so`). The whole
# core library is installed: handlers may `use` any core module.
#
# Configure is told exactly which libraries to link (-Dlibs) and which
# directories to search (-Dlibpth/-Dloclibpth/-Dlocincpth), so it cannot pick
# up host-only libraries (gdbm, Berkeley DB) that would be missing from the
# image; the DBM extensions that need them are left out.
{ mkHardened, sources, hardening, hardeningLib, tests }:
let
  # libperl and the XS extensions are shared objects (-fPIC, -shared); the
  # perl executable itself is linked as a PIE.
  libFlags = hardeningLib.flagsFor { inherit hardening; kind = "lib"; };
  exeFlags = hardeningLib.flagsFor { inherit hardening; kind = "exe"; };

  # perl's own core tests, through t/harness, on the perl and libperl of this
  # build tree (what `make install` copied). The CI subset: the interpreter's
  # base, compiler and control-flow tests, core ops (arrays, hashes, closures,
  # eval/die, sprintf/pack, sort, split, substr, tr), the regex engine
  # (re_tests and pat.t), strict/warnings, and XS extensions nginx handlers
  # commonly load (POSIX, Fcntl, List::Util, Data::Dumper, Digest::MD5/SHA,
  # Socket, IO). "full" is `make test_harness_notty`: every core test.
  ciFiles = [
    "base/*.t" "comp/*.t" "cmd/*.t"
    "op/array.t" "op/hash.t" "op/closure.t" "op/eval.t" "op/die.t" "op/sub.t"
    "op/sprintf.t" "op/sprintf2.t" "op/pack.t" "op/sort.t" "op/split.t"
    "op/substr.t" "op/index.t" "op/tr.t" "op/lc.t" "op/tie.t" "op/utf8decode.t"
    "re/regexp.t" "re/pat.t" "re/subst.t" "re/qr.t"
    "io/open.t" "io/utf8.t"
    "../lib/strict.t" "../lib/warnings.t"
    "../ext/POSIX/t/posix.t" "../ext/Fcntl/t/fcntl.t"
    "../cpan/Scalar-List-Utils/t/*.t" "../dist/Data-Dumper/t/dumper.t"
    "../cpan/Digest-MD5/t/*.t" "../cpan/Digest-SHA/t/*.t"
    "../cpan/Socket/t/Socket.t" "../cpan/Socket/t/socketpair.t" "../dist/IO/t/io_sock.t"
  ];
  testArgs = if tests.full then "" else "TEST_ARGS='${builtins.concatStringsSep " " ciFiles}' ";
in
mkHardened {
  pname = "perl";
  inherit (sources.perl) version;
  src = sources.perl.src;
  inherit hardening;
  licenses = [ "Artistic-1.0-Perl" "GPL-1.0-or-later" ];
  kind = "lib";
  env = {
    PERL_EXE_LDFLAGS = exeFlags.ldflags;
    PERL_DL_LDFLAGS = libFlags.ldflags;
  };
  configurePhase = ''
    sh ./Configure -des \
      -Dprefix="$out" \
      -Dcc=clang \
      -Doptimize=-O2 \
      -Accflags="$CFLAGS" \
      -Dldflags="$PERL_EXE_LDFLAGS" \
      -Dlddlflags="-shared $PERL_DL_LDFLAGS" \
      -Duseshrplib \
      -Dlibs="-lpthread -ldl -lm -lcrypt -lutil -lc" \
      -Dlibpth="/usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu" \
      -Dloclibpth= -Dlocincpth= \
      -Dnoextensions="DB_File GDBM_File NDBM_File ODBM_File" \
      -Ui_db -Ui_gdbm -Ui_ndbm -Ui_dbm \
      -Dman1dir=none -Dman3dir=none \
      -Dinstallusrbinperl=undef \
      -Dcf_by=armorred -Dmyhostname=localhost -Dmydomain=.localdomain \
      -Dperladmin=root@localhost -Dcf_email=root@localhost
  '';
  installPhase = ''
    make install
    # pod documentation is not needed at run time (perldoc is not shipped)
    rm -rf "$out"/lib/${sources.perl.version}/pod
  '';
  postInstall = ''
    # smoke test: the interpreter and an XS extension load with the store glibc
    "$out/bin/perl" -MPOSIX -e 'print "perl ", $], " ok\n"'
  '' + tests.run {
    package = "perl";
    inherit (sources.perl) version;
    suite = "t/harness";
    scope = if tests.full then "full" else "TEST_ARGS=${builtins.concatStringsSep " " ciFiles}";
    parser = "tap";
    command = "${testArgs}TEST_JOBS=\"$NIX_BUILD_CORES\" make test_harness_notty";
  };
  passthru = { upstreamTests = { inherit ciFiles; }; };
}
