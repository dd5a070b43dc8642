#!/usr/bin/env bash
# Creates .venv with the independent validators the tests use: spdx-tools and
# cyclonedx-python-lib (SBOM schemas), cryptography and PyNaCl (an independent
# cosign signature/key checker). Prints the venv's python path.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${ARMORRED_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
want="spdx-tools==0.8.3 cyclonedx-python-lib[json-validation]==8.5.0 cryptography pynacl"
stamp="$venv/.armorred-reqs"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check $want >&2
  echo "$want" >"$stamp"
fi
echo "$PWD/$venv/bin/python"
