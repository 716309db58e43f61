#!/usr/bin/env bash
# Create (if missing) the Python virtual environment tools/.venv and install the
# reference tooling from tools/requirements.txt. Idempotent: re-running only installs
# what is missing. Set PYTHON to choose the interpreter (default: python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/requirements.txt"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ]; then
    echo "setup-venv: using existing virtual environment $venv"
else
    echo "setup-venv: creating virtual environment $venv with $python"
    "$python" -m venv "$venv"
fi

echo "setup-venv: installing requirements from $req"
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"

echo "setup-venv: installed versions:"
"$venv/bin/python" - <<'PY'
from importlib.metadata import version, PackageNotFoundError
for name in ["torch", "transformers", "safetensors", "sentencepiece", "h5py", "numpy",
             "peft", "opacus", "dp-accounting", "prv-accountant"]:
    try:
        print(f"  {name} {version(name)}")
    except PackageNotFoundError:
        print(f"  {name} (missing)")
PY
echo "setup-venv: done; use $venv/bin/python"
