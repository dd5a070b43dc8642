#!/usr/bin/env bash
# Installs every system package armorred and its test suite need on a fresh
# Debian 12 machine (run as root). Idempotent: a second run only checks.
set -euo pipefail

packages=(
  # Nix (single-user, no daemon; Debian's /etc/nix/nix.conf has sandbox = false)
  nix-bin
  # the offline package set compiles with the host's clang 14 toolchain
  clang lld libclang-rt-14-dev make perl pkg-config patch xz-utils bzip2 file
  # libjpeg-turbo (for nginx image_filter via libgd) only builds with CMake
  cmake
  # GeoIP's release tarball is a git snapshot without configure
  autoconf automake libtool
  # llvm-ar/llvm-ranlib/llvm-nm for LTO static archives (redis deps, busybox)
  llvm-14
  # real OCI clients the tests check our output with
  skopeo umoci podman runc buildah uidmap fuse-overlayfs
  # hardening cross-check, registry, browser, misc test tools
  checksec docker-registry apache2-utils chromium curl jq python3-venv
  # bench/run.sh: the parallel limit pipeline and wall/CPU/RSS measurements
  pigz time
  # the offline set's patch selection and scripts/sources-update.py; the
  # archive keyring and gpgv check the Sources index it reads
  python3 debian-archive-keyring gpgv
  # tests/remote_builder.rs starts its own sshd on a loopback port as a Nix
  # remote builder (util-linux `unshare` gives it a store of its own)
  openssh-server
  # upstream test suites in the package builds: redis' runtest (Tcl, tcl-tls
  # for --tls), its test certificates (openssl), OpenSSL's and perl's
  # harnesses (perl, above)
  tcl tcl-tls openssl
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Sources are fetched from the mirror's pool by scripts/fetch-sources.sh, so no
# deb-src entry is needed; an older checkout's entry is removed.
need_update=0
if [ -f /etc/apt/sources.list.d/armorred-debsrc.sources ]; then
  rm -f /etc/apt/sources.list.d/armorred-debsrc.sources
  need_update=1
fi

if [ ${#missing[@]} -gt 0 ] || [ $need_update = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-system: installing ${missing[*]}" >&2
    # Packages with a service (openssh-server, docker-registry) must not start
    # it: the tests run their own instances on loopback ports they pick. An
    # existing policy-rc.d (a container's) is left as it is.
    guard=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      guard=1
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    if [ $guard = 1 ]; then
      rm -f /usr/sbin/policy-rc.d
      trap - EXIT
    fi
  fi
fi

# Nix 2.8 single-user as root: make sure the store and state dirs exist.
mkdir -p /nix/store /nix/var/nix
# Single-user root Nix: builds run as root itself. Debian's nix-bin does not
# create the nixbld group, so an empty build-users-group is required.
mkdir -p /etc/nix
touch /etc/nix/nix.conf
grep -q '^sandbox' /etc/nix/nix.conf || echo "sandbox = false" >>/etc/nix/nix.conf
grep -q '^build-users-group' /etc/nix/nix.conf || echo "build-users-group =" >>/etc/nix/nix.conf
# No binary cache is reachable here; asking cache.nixos.org only adds retries.
grep -q "^substituters" /etc/nix/nix.conf || echo "substituters =" >>/etc/nix/nix.conf
echo "setup-system: ok" >&2
