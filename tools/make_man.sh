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
unset GROKWATCH_FORMAT GROKWATCH_WORKERS GROKWATCH_CACHE GROKWATCH_FIT GROKWATCH_FAIL_ON GROKWATCH_WATCH_FORMAT GROKWATCH_EXIT_ON GROKWATCH_EVENTS GROKWATCH_SCHEDULER GROKWATCH_DEVICE || true
version="$("$GROKWATCH" --version | awk '{print $NF}')"
commands=(scan traps report train watch)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# help2man reads `grokwatch --help`. Click wraps that help at 80 columns and breaks words at
# hyphens ("--alpha-" / "high"); help2man then joins such lines *without* the hyphen
# ("--alphahigh"). So help2man gets the help unwrapped (man reflows it anyway), from a
# wrapper that runs the same CLI with an unlimited help width.
python="$(sed -n '1s/^#! *//p' "$(command -v "$GROKWATCH")")"
mkdir -p "$tmp/bin"
printf '#!/bin/sh\nexec %s -c %s "$@"\n' "$python" \
  "'import sys; from grokwatch.cli import app; app(sys.argv[1:], prog_name=\"grokwatch\", terminal_width=100000, max_content_width=100000)'" \
  > "$tmp/bin/grokwatch"
chmod +x "$tmp/bin/grokwatch"

# Extra sections for the root page (help2man --include format).
{
  echo "[EXIT STATUS]"
  echo ".TP"; echo ".B 0"; echo "Success (and --fail-on found nothing at or above its level)."
  echo ".TP"; echo ".B 1"; echo "grokwatch report: a checkpoint at or above --fail-on (trap, anti-grokking); --exit-zero turns this into 0. grokwatch watch: a checkpoint at or above --exit-on."
  echo ".TP"; echo ".B 2"; echo "Usage error (unknown option, bad value), or an output file that cannot be written."
  echo ".TP"; echo ".B 3"; echo "A checkpoint was unreadable or unsafe (e.g. a pickle that would import code); the rest was still processed."
  echo ".TP"; echo ".B 4"; echo "No checkpoints found (missing or empty folder)."
  echo ".TP"; echo ".B 5"; echo "--scheduler: Dask is not installed (pip install 'grokwatch[dask]'), or the scheduler is unreachable, has no workers, was lost mid-scan or its workers run another grokwatch version; finished checkpoints are cached, rerun to resume."
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
  --include="$tmp/root.h2m" --output="$out/grokwatch.1" "$tmp/bin/grokwatch"

for c in "${commands[@]}"; do
  # the first paragraph of the command's help (its short help) is its NAME line
  name="$("$GROKWATCH" "$c" --help | awk 'NR>1 && NF {sub(/^ +/, ""); line = line (line ? " " : "") $0; next}
                                           line {exit} END {print line}' | sed 's/[.:]$//')"
  printf '[SEE ALSO]\n\\fBgrokwatch\\fR(1)\n' > "$tmp/$c.h2m"
  # help2man runs "$prog --help" through the shell, so "grokwatch scan" works as a program name
  help2man --no-info --section=1 --version-string="grokwatch-$c $version" --name="$name" \
    --include="$tmp/$c.h2m" --output="$out/grokwatch-$c.1" "$tmp/bin/grokwatch $c"
done

# Every hyphen in the text is a hyphen-minus someone may type or search for (option names,
# file names, "grokwatch-scan"): escape the ones help2man left bare, so groff prints "-" and
# not a typographic hyphen, and turn hyphenation off (.nh) so no option name is split.
for page in "$out"/grokwatch*.1; do
  perl -pi -e 's/(?<!\\)-/\\-/g unless /^[.\x27]/; $_ .= ".nh\n" if /^\.TH /' "$page"
done
echo "make_man.sh: wrote $(ls "$out"/grokwatch*.1 | wc -l) pages to $out/"
