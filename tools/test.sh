#!/usr/bin/env bash
# Install what the tests need into .venv (grokwatch[dev]; help2man and chromium where apt-get
# can install them) and run the test suite. Arguments go to pytest:
#
#   bash tools/test.sh                 # everything (CI runs this, via .ci/run)
#   bash tools/test.sh -m "not slow"   # skip the longer end-to-end tests
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/venv.sh dev,test,lightning,hf,dask
# DeepSpeed's checkpoint layouts are written for real by one test. Its sdist builds against the torch
# installed above (hence no build isolation, and no CUDA ops); if it cannot be installed, that test
# skips and says so.
if ! python -c "import deepspeed" 2>/dev/null; then
  pin="$(mktemp)"
  python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$pin"
  DS_BUILD_OPS=0 python -m pip install -q --no-build-isolation -c "$pin" deepspeed ||
    echo "warning: could not install deepspeed; its layout test will skip" >&2
  rm -f "$pin"
fi
# help2man regenerates the man pages in a test; chromium measures and screenshots the HTML report.
# Without them those tests skip (and say so).
missing=""
for tool in help2man chromium; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -q $missing >/dev/null 2>&1 ||
      (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $missing >/dev/null 2>&1)) ||
      echo "warning: could not install$missing; the tests that need them will skip" >&2
  else
    echo "note:$missing not installed (apt-get install$missing); the tests that need them will skip" >&2
  fi
fi
python -m pytest "$@"
