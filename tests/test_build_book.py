"""scripts/build_book.sh's execution cache: re-execute the chapters exactly when cvae_lib's code changes.

The script is run for real on a copy of the repository's pieces it reads, with a
stand-in ``jupyter-book`` that records its arguments, so the test takes a second and
needs neither MathJax nor the chapters.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FAKE_JUPYTER_BOOK = """#!/usr/bin/env bash
echo "$@" >> "$(dirname "$0")/../../calls.txt"
mkdir -p _build/html
"""


def _book_copy(tmp_path: Path) -> Path:
    root = tmp_path / "book"
    shutil.copytree(
        REPO / "cvae_lib",
        root / "cvae_lib",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "build_book.sh", root / "scripts")
    shutil.copy(REPO / "pyproject.toml", root)
    mathjax = root / "_build" / "offline_static" / "mathjax"
    mathjax.mkdir(parents=True)
    (mathjax / "tex-chtml.js").write_text("")
    version = next(
        line
        for line in (REPO / "scripts" / "build_book.sh").read_text().splitlines()
        if line.startswith("MATHJAX_VERSION=")
    )
    (mathjax / "VERSION").write_text(version.split("=", 1)[1] + "\n")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "jupyter-book").write_text(FAKE_JUPYTER_BOOK)
    (bin_dir / "jupyter-book").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    return root


def _build(root: Path, **env: str) -> tuple[str, bool]:
    """(the fake jupyter-book's arguments, whether the execution cache survived the build);
    ``env``: CVAE_PROFILE and CVAE_DATA for the build (unset when not given)."""
    cache = root / "_build" / ".jupyter_cache"
    cache.mkdir(exist_ok=True)  # as if jupyter-cache had stored the executed chapters
    (cache / "entry").write_text("executed")
    done = subprocess.run(
        ["bash", str(root / "scripts" / "build_book.sh")],
        capture_output=True,
        text=True,
        env={
            **{
                k: v
                for k, v in os.environ.items()
                if k not in ("CVAE_PROFILE", "CVAE_DATA")
            },
            "PATH": "/usr/bin:/bin",
            **env,
        },
    )
    assert done.returncode == 0, done.stderr
    calls = (root / "calls.txt").read_text().splitlines()
    return calls[-1], (cache / "entry").exists()


def test_chapters_are_re_executed_when_the_library_code_changes(tmp_path):
    root = _book_copy(tmp_path)
    arguments, _ = _build(root)
    assert (
        "--warningiserror" in arguments and "--all" in arguments
    )  # first build: nothing to trust

    arguments, kept = _build(root)
    assert "--all" not in arguments and kept

    plots = root / "cvae_lib" / "plots.py"
    plots.write_text(plots.read_text().replace('"""', '"""Reworded. ', 1))
    arguments, kept = _build(root)
    assert "--all" not in arguments and kept, (
        "a docstring edit must not re-execute the book"
    )

    plots.write_text(plots.read_text() + "\nUNUSED = 1\n")
    arguments, kept = _build(root)
    # an emptied cache alone is not enough: Sphinx would re-read (and so re-execute) no page
    assert "--all" in arguments and not kept

    arguments, kept = _build(root)
    assert "--all" not in arguments and kept


def test_chapters_are_re_executed_when_the_run_profile_changes(tmp_path):
    """A full-profile build must not restore the quick build's executed chapters, nor back."""
    root = _book_copy(tmp_path)
    _build(root)
    arguments, kept = _build(root)
    assert "--all" not in arguments and kept

    arguments, kept = _build(root, CVAE_PROFILE="full", CVAE_DATA="/data/fashion-mnist")
    assert "--all" in arguments and not kept
    arguments, kept = _build(root, CVAE_PROFILE="full", CVAE_DATA="/data/fashion-mnist")
    assert "--all" not in arguments and kept

    arguments, kept = _build(root, CVAE_PROFILE="full", CVAE_DATA="/data/mnist")
    assert "--all" in arguments and not kept
    arguments, kept = _build(root)
    assert "--all" in arguments and not kept
