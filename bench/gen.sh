# Builder of one synthetic store path (bench/synthetic.nix). POSIX sh with
# the host's /usr/bin tools (the offline set runs with sandbox = false).
#
# Inputs: $out, $seed, $size (bytes). The content is a pure function of
# seed and size: every byte comes from an AES-128-CTR keystream keyed by the
# seed, so rebuilding gives the same bytes on any machine with openssl.
#
# The mix stands in for a real closure (gzip -6 ratio of each part):
#   30% incompressible   already compressed assets          1.00
#   40% code-like        `od` dump of random bytes            0.35
#   15% base64           encoded data                         0.76
#   15% sparse text      docs, locales                        0.12
# plus 64 small files (1-16 KiB) per path for per-file overhead.
set -eu

rnd() { # rnd STREAM BYTES
  openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' $((seed * 16 + $1)))" \
    -iv 0 -in /dev/zero 2>/dev/null | head -c "$2"
}

mkdir -p "$out/share/assets" "$out/lib" "$out/share/doc" "$out/share/small"
rnd 1 $((size * 30 / 100)) >"$out/share/assets/blob.bin"
rnd 2 $((size * 40 / 100 / 2)) | od -An -tu1 -v -w32 | head -c $((size * 40 / 100)) >"$out/lib/code.dat"
rnd 3 $((size * 15 / 100 * 3 / 4)) | base64 -w 76 >"$out/share/data.b64"
rnd 4 $((size * 15 / 100)) | tr -c 'a-p' ' ' >"$out/share/doc/text.txt"
i=0
while [ $i -lt 64 ]; do
  rnd $((5 + i)) $((1024 + (i * 241) % 15360)) | od -An -tx1 -v >"$out/share/small/f-$i.txt"
  i=$((i + 1))
done
