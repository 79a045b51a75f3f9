#!/usr/bin/env bash
# Build the Jupyter Book into _build/html, failing on any warning.
#
#   bash scripts/build_book.sh            # what `make book` runs after the notebooks
#   JB=.venv/bin/jb bash scripts/build_book.sh
#
# Expects the executed notebooks in book/executed/ (from `python -m mi_lib reproduce`).
# A notebook whose last run failed has a marker in book/executed/failed/; its page gets a
# warning box (book/_ext/reproduce_status.py) and this script names it at the end.
# Uses $JB if set, else `jb` next to $PYTHON, else `jb` on PATH. Extra arguments go to jb.
# Exit status: jb's own status (non-zero on warnings with -W --keep-going), and also
# non-zero if the log shows any "WARNING"/"ERROR" line, as a belt-and-braces check.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ -z "${JB:-}" ]]; then
  if [[ -n "${PYTHON:-}" && -x "$(dirname "$PYTHON")/jb" ]]; then
    JB="$(dirname "$PYTHON")/jb"
  else
    JB="jb"
  fi
fi
command -v "$JB" >/dev/null 2>&1 || { echo "build_book: jupyter-book not found ($JB); set JB= or PYTHON=" >&2; exit 2; }
# the kernel that executes the theory chapters is the python next to jb
export PATH="$(dirname "$(command -v "$JB")"):$PATH"

bash scripts/fetch_mathjax.sh || { echo "build_book: could not fetch MathJax" >&2; exit 2; }

mkdir -p _build
LOG="_build/build.log"
start=$(date +%s)
"$JB" build . -W -n --keep-going "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
secs=$(( $(date +%s) - start ))
warnings=$(grep -cE "(WARNING|ERROR|CRITICAL):" "$LOG" || true)
shopt -s nullglob
failed=(book/executed/failed/*.json)
shopt -u nullglob  # the CDN check below passes --include=*.html unquoted
if [[ ${#failed[@]} -gt 0 ]]; then
  names=$(for f in "${failed[@]}"; do basename "$f" .json; done | tr '\n' ' ')
  echo "build_book: the last run of ${#failed[@]} notebook(s) failed, their pages carry a warning box: ${names}" >&2
fi
echo "build_book: jb exit status $status, $warnings warning/error lines, ${secs}s (log: $LOG)"
if [[ "$status" -ne 0 ]]; then
  exit "$status"
fi
if [[ "$warnings" -ne 0 ]]; then
  grep -E "(WARNING|ERROR|CRITICAL):" "$LOG" >&2
  exit 1
fi
# No page may load a script, style sheet or font from a CDN (sphinx-thebe's inline
# THEBE_JS_URL constant is only fetched on a "live code" click, which is switched off).
CDN_RE='(src|href)="https?://[^"]*(cdn|jsdelivr|unpkg|googleapis|cloudflare)'
if grep -rlE "$CDN_RE" _build/html --include=*.html >/dev/null 2>&1; then
  echo "build_book: a built page loads something from a CDN:" >&2
  grep -rloE "$CDN_RE" _build/html --include=*.html >&2
  exit 1
fi
exit 0
