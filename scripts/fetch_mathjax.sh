#!/usr/bin/env bash
# Copy MathJax 3 (es5 build) from the npm registry package into book/_static/mathjax/,
# so the built book typesets maths with no CDN request. Idempotent: does nothing when
# the copy is already there (pass --force to refetch). book/_static/mathjax/ is git-ignored.
set -euo pipefail
VERSION="${MATHJAX_VERSION:-3.2.2}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/book/_static/mathjax"
CACHE="$ROOT/.cache/npm"

if [[ "${1:-}" != "--force" && -f "$DEST/tex-chtml.js" && -f "$DEST/.version" && "$(cat "$DEST/.version")" == "$VERSION" ]]; then
  echo "fetch_mathjax: MathJax $VERSION already in $DEST"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch_mathjax: npm not found (install Node.js)" >&2; exit 1; }

mkdir -p "$CACHE"
TGZ="$CACHE/mathjax-$VERSION.tgz"
if [[ ! -f "$TGZ" ]]; then
  # `npm pack` downloads the registry tarball without installing anything
  (cd "$CACHE" && npm pack --silent "mathjax@$VERSION" >/dev/null)
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
tar -xzf "$TGZ" -C "$TMP"
[[ -f "$TMP/package/es5/tex-chtml.js" ]] || { echo "fetch_mathjax: es5/tex-chtml.js missing in $TGZ" >&2; exit 1; }
rm -rf "$DEST.tmp"
cp -R "$TMP/package/es5" "$DEST.tmp"
cp "$TMP/package/LICENSE" "$DEST.tmp/LICENSE"
echo "$VERSION" > "$DEST.tmp/.version"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "fetch_mathjax: MathJax $VERSION copied to $DEST ($(du -sh "$DEST" | cut -f1))"
