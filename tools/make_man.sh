#!/usr/bin/env bash
# Regenerate the man pages under man/ from the CLI's own --help (help2man).
#
#   tools/make_man.sh            # writes man/grokwatch.1 and man/grokwatch-<command>.1
#   tools/make_man.sh OUTDIR     # writes them elsewhere (tests/test_man.py diffs that with man/)
#
# Byte-stable: plain (non-rich) Typer help at a fixed width, a fixed date, no
# Texinfo pointer, the version string from the package. Rerun after any change
# to a command's help text and commit man/ with it.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-man}"
mkdir -p "$out"

GROKWATCH="${GROKWATCH:-grokwatch}"
command -v help2man >/dev/null || { echo "make_man.sh: help2man not found (apt-get install help2man)" >&2; exit 1; }
command -v "$GROKWATCH" >/dev/null || { echo "make_man.sh: $GROKWATCH not on PATH (activate the venv)" >&2; exit 1; }

export TYPER_USE_RICH=0 COLUMNS=80 TERM=dumb NO_COLOR=1 LC_ALL=C.UTF-8 LANG=C.UTF-8
export SOURCE_DATE_EPOCH=1767225600  # 2026-01-01: the date printed in every page's footer
unset GROKWATCH_FORMAT GROKWATCH_WORKERS GROKWATCH_CACHE GROKWATCH_FIT GROKWATCH_FAIL_ON GROKWATCH_WATCH_FORMAT GROKWATCH_EXIT_ON GROKWATCH_EVENTS || true
version="$("$GROKWATCH" --version | awk '{print $NF}')"
commands=(scan traps report train watch)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Extra sections for the root page (help2man --include format).
{
  echo "[EXIT STATUS]"
  echo ".TP"; echo ".B 0"; echo "Success (and --fail-on found nothing at or above its level)."
  echo ".TP"; echo ".B 1"; echo "grokwatch report: a checkpoint at or above --fail-on (trap, anti-grokking); --exit-zero turns this into 0. grokwatch watch: a checkpoint at or above --exit-on."
  echo ".TP"; echo ".B 2"; echo "Usage error (unknown option, bad value), or an output file that cannot be written."
  echo ".TP"; echo ".B 3"; echo "A checkpoint was unreadable or unsafe (e.g. a pickle that would import code); the rest was still processed."
  echo ".TP"; echo ".B 4"; echo "No checkpoints found (missing or empty folder)."
  echo ".TP"; echo ".B 130"; echo "Interrupted (grokwatch train saves a checkpoint first); grokwatch watch exits 0 on Ctrl-C."
  echo "[ENVIRONMENT]"
  echo "Main options have GROKWATCH_* twins (listed with each option in the command pages)."
  echo "NO_COLOR turns colour off. Under GITHUB_ACTIONS=true, grokwatch report and watch print ::warning:: annotations;"
  echo "when GITHUB_STEP_SUMMARY is set it appends its Markdown summary there."
  echo "[SEE ALSO]"
  sep=""
  for c in "${commands[@]}"; do printf '%s\\fBgrokwatch-%s\\fR(1)' "$sep" "$c"; sep=", "; done
  echo
} > "$tmp/root.h2m"

help2man --no-info --section=1 --version-string="grokwatch $version" \
  --name="audit training checkpoints with Heavy-Tailed Self-Regularization" \
  --include="$tmp/root.h2m" --output="$out/grokwatch.1" "$GROKWATCH"

for c in "${commands[@]}"; do
  # the first paragraph of the command's help (its short help) is its NAME line
  name="$("$GROKWATCH" "$c" --help | awk 'NR>1 && NF {sub(/^ +/, ""); line = line (line ? " " : "") $0; next}
                                           line {exit} END {print line}' | sed 's/[.:]$//')"
  printf '[SEE ALSO]\n\\fBgrokwatch\\fR(1)\n' > "$tmp/$c.h2m"
  # help2man runs "$prog --help" through the shell, so "grokwatch scan" works as a program name
  help2man --no-info --section=1 --version-string="grokwatch-$c $version" --name="$name" \
    --include="$tmp/$c.h2m" --output="$out/grokwatch-$c.1" "$GROKWATCH $c"
done
echo "make_man.sh: wrote $(ls "$out"/grokwatch*.1 | wc -l) pages to $out/"
