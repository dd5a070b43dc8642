# The entrypoint compatibility programs (nix/offline/entrypoint/): the
# official nginx and redis images' entrypoint behaviour as small C programs,
# so a hardened image without a shell still honours the same environment
# variables and arguments. Built with the tier's hardening like the image's
# own package (the gate checks them the same way), and linked against the
# closure's glibc, which the image ships anyway.
#   bin/nginx-entrypoint   what /docker-entrypoint.sh and /docker-entrypoint.d do
#   bin/redis-entrypoint   what the redis image's docker-entrypoint.sh does
#   share/nginx-entrypoint.d  the official /docker-entrypoint.d names as small
#                          read-only markers; the nginx image links
#                          /docker-entrypoint.d here, and the program does the
#                          step a marker names where it meets it in the walk
# The build runs the unit tests (entrypoint_test.c) with the same flags and
# fails on any failed check.
{ mkHardened, hardening }:
mkHardened {
  pname = "armorred-entrypoint";
  version = "1.0";
  src = builtins.path { path = ../entrypoint; name = "armorred-entrypoint-src"; };
  inherit hardening;
  licenses = [ "Apache-2.0" ];
  buildPhase = ''
    for m in nginx redis; do
      M=$(echo "$m" | tr a-z A-Z)
      $CC $CFLAGS -Wall -Wextra -Werror -DENTRYPOINT_$M -o "$m-entrypoint" entrypoint.c $LDFLAGS
    done
    $CC $CFLAGS -Wall -Wextra -Werror -o entrypoint_test entrypoint_test.c $LDFLAGS
    TMPDIR="$NIX_BUILD_TOP" ./entrypoint_test
  '';
  installPhase = ''
    mkdir -p "$out/bin"
    cp nginx-entrypoint redis-entrypoint "$out/bin/"
    mkdir -p "$out/share"
    cp -r nginx-entrypoint.d "$out/share/"
    chmod 0555 "$out"/share/nginx-entrypoint.d/*
  '';
}
