# Sourced by tools/quickstart.sh and tools/test.sh: a Python environment with grokwatch installed.
#
#   . tools/venv.sh [EXTRAS]     # e.g. "dev"; run from the repository root
#
# Uses the active virtual environment if there is one, else creates/uses .venv. Installs torch
# first: a bare "torch" requirement pulls the multi-GB CUDA build on a stock Linux machine, so
# CPU-only users set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (PyTorch's CPU
# wheel index). Set GROKWATCH_TORCH to install another torch version.
set -euo pipefail
extras="${1:-}"
if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
if ! python -c "import torch" 2>/dev/null; then
  echo "installing ${GROKWATCH_TORCH:-torch==2.13.0}${TORCH_INDEX_URL:+ from $TORCH_INDEX_URL}" >&2
  python -m pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${GROKWATCH_TORCH:-torch==2.13.0}"
fi
echo "installing grokwatch${extras:+[$extras]} into ${VIRTUAL_ENV}" >&2
# Pin the torch just installed: the extras (transformers, peft, lightning) must never swap it.
constraints="$(mktemp)"
python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$constraints"
python -m pip install -q -c "$constraints" -e ".${extras:+[$extras]}"
rm -f "$constraints"
