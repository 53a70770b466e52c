"""Let ``pytest --nbval-lax notebooks/`` test the chapters straight from their MyST sources.

The chapters are MyST-Markdown notebooks (``*.md`` with jupytext front matter); no
``.ipynb`` is committed. nbval only collects ``.ipynb`` files, so for each chapter
this hook writes the jupytext conversion to ``_build/nbval/<name>.ipynb`` (git-ignored,
rewritten on every run so it never goes stale) and hands that file to nbval's
:class:`~nbval.plugin.IPyNbFile`. The test ids name the source, e.g.
``notebooks/05_training.md::Cell 3``, and the kernel starts in ``notebooks/``, as it
does when Jupyter Book executes the chapter, with the repository root on
``PYTHONPATH`` so ``import cvae_lib`` works even where the package is not installed.

Without ``--nbval``/``--nbval-lax`` the chapters are not collected, so a plain
``pytest`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "_build" / "nbval"


def _prepend_pythonpath(path: Path) -> None:
    """The kernel is a subprocess that inherits this environment."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(path) not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(path), *parts])


def is_chapter(path: Path) -> bool:
    """A MyST notebook: a ``.md`` file whose front matter declares jupytext and a kernel."""
    if path.suffix != ".md":
        return False
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return False
    front = text.split("\n---", 1)[0]
    return "jupytext:" in front and "kernelspec:" in front


def convert(source: Path) -> Path:
    """Write ``source`` as a notebook under ``_build/nbval/`` and return its path."""
    import jupytext

    notebook = jupytext.read(source)
    target = GENERATED / f"{source.stem}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    # each xdist worker converts every chapter: a temporary file of its own each
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(jupytext.writes(notebook, fmt="ipynb"), encoding="utf-8")
    os.replace(temporary, target)  # nbval never reads a half-written notebook
    return target


def _notebook_file_class():
    from nbval.plugin import IPyNbFile

    class MystNotebookFile(IPyNbFile):
        """nbval's collector, fed the converted notebook, run in the source's folder."""

        def collect(self):
            source = self.path
            self.path = convert(source)  # IPyNbFile.collect reads self.fspath
            try:
                items = list(super().collect())
            finally:
                self.path = source  # ids, reports and the kernel's cwd use the source
            return items

    return MystNotebookFile


def pytest_configure(config):
    if config.option.nbval or config.option.nbval_lax:
        _prepend_pythonpath(ROOT)
        _one_thread_per_kernel_when_workers_fill_the_cores()


def _one_thread_per_kernel_when_workers_fill_the_cores() -> None:
    """As many xdist workers as cores: each chapter's kernel computes on one thread
    (``TF_NUM_INTRAOP_THREADS``, which the kernel inherits), since two trainings side by
    side get more done that way than with two threads each, which contend for the cores
    (``benchmarks/README.md``, the test command on two workers). A value set in the
    environment wins."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers and workers >= (os.cpu_count() or 1):
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")


def pytest_collect_file(file_path: Path, parent):
    option = parent.config.option
    if not (getattr(option, "nbval", False) or getattr(option, "nbval_lax", False)):
        return None
    if not is_chapter(file_path):
        return None
    return _notebook_file_class().from_parent(parent, path=file_path)


#: The chapters that train models, longest first: queued before everything else, so that
#: under two pytest-xdist workers chapter 7's three models train on one while chapter 5's
#: model (which chapters 6, 9 and 10 reuse) trains on the other, and the unit tests and the
#: other chapters follow on whichever worker is free. Without xdist only the order changes.
TRAINING_CHAPTERS = ("07_comparison.md", "05_training.md")


def pytest_collection_modifyitems(items):
    def queue_position(item):
        name = Path(
            str(item.parent.path)
        ).name  # a cell's own path is the generated .ipynb
        return (
            TRAINING_CHAPTERS.index(name)
            if name in TRAINING_CHAPTERS
            else len(TRAINING_CHAPTERS)
        )

    items.sort(key=queue_position)  # stable: every file keeps its own order


def pytest_terminal_summary(terminalreporter):
    """A per-chapter time table after the notebook tests: where the time goes.

    Sums the cells' run times from the reports pytest keeps (the cells' own hooks run
    under the generated notebooks' folder, which this conftest does not cover). Under
    two workers chapters overlap, so the sum exceeds the wall time pytest prints.
    """
    chapters: dict = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            path = getattr(report, "nodeid", "").split("::", 1)[0]
            if path.endswith(".md") and getattr(report, "when", None) == "call":
                cells, seconds = chapters.get(path, (0, 0.0))
                chapters[path] = (cells + 1, seconds + report.duration)
    if not chapters:
        return
    write = terminalreporter.write_line
    terminalreporter.section("time per chapter")
    for path, (cells, seconds) in sorted(chapters.items()):
        write(f"{path:32s} {cells:3d} cells {seconds:8.1f} s")
    total = sum(seconds for _, seconds in chapters.values())
    write(
        f"{'all chapters (sum)':32s} {'':9s} {total:8.1f} s  ({_cpu_name()}, {os.cpu_count()} cores)"
    )


def _cpu_name() -> str:
    """The CPU's model name and whether it has AVX-512 (which speeds oneDNN up several times)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    for line in info.splitlines():
        if line.startswith("model name"):
            isa = "with AVX-512" if "avx512" in info else "without AVX-512"
            cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
            isa += f", oneDNN capped to {cap}" if cap else ""
            return f"{line.split(':', 1)[1].strip()} {isa}"
    import platform

    return platform.processor() or "an unknown CPU"
