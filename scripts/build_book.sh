#!/usr/bin/env bash
# Build the book into _build/html, offline-readable: no page loads anything from a CDN.
#
#   scripts/build_book.sh            # build (executes the chapters; cached in _build/.jupyter_cache)
#   CVAE_PROFILE=full scripts/build_book.sh   # the full MNIST run (GPU)
#
# 1. MathJax 3 comes from the npm registry (a pinned, checksum-verified tarball), is
#    unpacked into _build/offline_static/mathjax (git-ignored) and is copied into the
#    book's _static/ by Sphinx (see html_static_path and mathjax_path in _config.yml).
#    Later builds reuse it.
# 2. jupyter-book builds with warnings as errors, so a chapter that raises, a broken
#    reference or a missing citation fails the build.
# 3. The built pages are checked for <script src="http..."> / <link href="http...">.
#
# Execution results are cached in _build/.jupyter_cache, keyed by jupyter-cache on each
# chapter's code. The chapters' outputs also depend on cvae_lib, so this script keeps a
# fingerprint of the library next to the cache and empties the cache when it changes:
# cvae_lib/store/fingerprint.py over every module (the one the training runs use, blind
# to comments and docstrings, which no chapter shows), plus pyproject.toml, plus what
# picks the run profile (CVAE_PROFILE, CVAE_DATA, and whether the machine has an NVIDIA
# GPU, which `auto` follows): a full-profile build never shows a quick build's outputs.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

MATHJAX_VERSION=3.2.2
MATHJAX_SHA256=1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
STATIC="$ROOT/_build/offline_static"
MATHJAX_DIR="$STATIC/mathjax"

fetch_mathjax() {
    if [[ -f "$MATHJAX_DIR/tex-chtml.js" && "$(cat "$MATHJAX_DIR/VERSION" 2>/dev/null)" == "$MATHJAX_VERSION" ]]; then
        return
    fi
    command -v npm >/dev/null || { echo "build_book: npm is needed once to fetch MathJax $MATHJAX_VERSION" >&2; exit 1; }
    local work="$STATIC/.download"
    rm -rf "$work"
    mkdir -p "$work"
    echo "build_book: fetching MathJax $MATHJAX_VERSION from the npm registry"
    (cd "$work" && npm pack --silent "mathjax@$MATHJAX_VERSION" >/dev/null)
    echo "$MATHJAX_SHA256  $work/mathjax-$MATHJAX_VERSION.tgz" | sha256sum --check --quiet \
        || { echo "build_book: checksum mismatch for mathjax-$MATHJAX_VERSION.tgz" >&2; exit 1; }
    tar xzf "$work/mathjax-$MATHJAX_VERSION.tgz" -C "$work"
    # The CHTML bundle plus what it loads on demand (TeX extensions, fonts, menu, a11y).
    mkdir -p "$work/mathjax"
    cp "$work/package/es5/tex-chtml.js" "$work/package/LICENSE" "$work/mathjax/"
    cp -r "$work/package/es5/"{a11y,adaptors,input,output,sre,ui} "$work/mathjax/"
    echo "$MATHJAX_VERSION" > "$work/mathjax/VERSION"
    rm -rf "$MATHJAX_DIR"
    mv "$work/mathjax" "$MATHJAX_DIR"  # appears complete or not at all
    rm -rf "$work"
}

find_jupyter_book() {
    if [[ -x "$ROOT/.venv/bin/jupyter-book" ]]; then
        echo "$ROOT/.venv/bin/jupyter-book"
    elif command -v jupyter-book >/dev/null; then
        command -v jupyter-book
    else
        echo "build_book: jupyter-book not found: pip install -e '.[book]'" >&2
        exit 1
    fi
}

check_offline() {
    local hits
    hits=$(grep -rhoE '<(script|link)[^>]*(src|href)="(https?:)?//[^"]*"' "$ROOT/_build/html" --include='*.html' \
        | sort | uniq -c || true)
    if [[ -n "$hits" ]]; then
        echo "build_book: pages load resources from the network:" >&2
        echo "$hits" >&2
        exit 1
    fi
    echo "build_book: no <script src> or <link href> points off-site"
}

# What the chapters' run profile depends on besides the code (cvae_lib.book).
run_profile_inputs() {
    echo "CVAE_PROFILE=${CVAE_PROFILE:-} CVAE_DATA=${CVAE_DATA:-}"
    echo "nvidia GPUs: $({ compgen -G '/dev/nvidia[0-9]*' || true; } | wc -l)"
}

# Empty the execution cache when cvae_lib's code (or the package metadata) changed since it was filled.
# $1: the Python to run the fingerprint with (stdlib only: run as a script, it imports no TensorFlow).
invalidate_stale_cache() {
    local cache="$ROOT/_build/.jupyter_cache" stamp="$ROOT/_build/.jupyter_cache.cvae_lib.sha256" current code
    code=$("$1" "$ROOT/cvae_lib/store/fingerprint.py")
    current=$(cd "$ROOT" && { echo "$code"; sha256sum pyproject.toml; run_profile_inputs; } | sha256sum)
    if [[ "$(cat "$stamp" 2>/dev/null)" != "$current" ]]; then
        if [[ -d "$cache" || -d "$ROOT/_build/.doctrees" ]]; then
            echo "build_book: cvae_lib changed since the chapters were last executed: re-executing them"
        fi
        rm -rf "$cache"
        # Sphinx re-reads only the pages whose source changed, so without a fresh
        # environment an emptied cache would re-execute nothing and keep stale pages.
        FRESH_ENV=(--all)
    fi
    mkdir -p "$ROOT/_build"
    echo "$current" > "$stamp"
}

# The explorer chapter writes the decoder's data file into $STATIC/explorer/ when it runs
# (Sphinx copies it into _static/), and a chapter restored from the execution cache does
# not run: if the file is gone, drop the cache's stamp so that the chapters run again.
require_explorer_data() {
    if [[ -f "$ROOT/notebooks/10_explorer.md" && ! -f "$STATIC/explorer/cvae_explorer_data.js" ]]; then
        [[ -d "$ROOT/_build/.jupyter_cache" ]] && echo "build_book: the explorer's data file is missing: re-executing the chapters"
        rm -f "$ROOT/_build/.jupyter_cache.cvae_lib.sha256"
    fi
}

fetch_mathjax
require_explorer_data
JB=$(find_jupyter_book)
FRESH_ENV=()
PY="$(dirname "$JB")/python"
[[ -x "$PY" ]] || PY=python3
invalidate_stale_cache "$PY"
"$JB" build "$ROOT" --warningiserror --keep-going "${FRESH_ENV[@]}"
check_offline
echo "build_book: open _build/html/index.html"
