"""Rehearse the full profile at full size: build the whole book with ``CVAE_PROFILE=full``
on MNIST-format files named by ``CVAE_DATA`` (by default Debian's Fashion-MNIST, 60,000
+ 10,000 images: ``apt-get install dataset-fashion-mnist``), and record each chapter's
wall time and peak memory.

    .venv/bin/python benchmarks/full_book.py                      # the rehearsal: over 30 min on 2 cores
    .venv/bin/python benchmarks/full_book.py --subset 1000 500    # the same path on the first 1,000 + 500 images

It runs ``scripts/build_book.sh`` once, with the execution cache emptied so that every
chapter is executed, and follows its log: a chapter's wall time runs from MyST-NB's
"Executing notebook" line to the line that ends it (MyST-NB's own time for the
notebook is recorded beside it; a chapter that fails is marked so whenever its
warning arrives), and its peak memory is the high-water mark of its
kernel's resident set (``VmHWM`` in ``/proc/<pid>/status``, read every half second
while the kernel lives; Linux only). The build's own peak (Sphinx, not counting the
kernels) comes from ``wait4``. Prints a table and writes a JSON file (``--json``);
the build's log goes to ``_build/full-book.log``. Trained runs go to ``--runs`` (by
default ``$CVAE_RUNS`` or ``_runs/``; pass an empty folder to rehearse a fresh clone).

``--subset N_TRAIN N_TEST`` writes the first images of ``--data`` into a temporary IDX
folder and builds on those: the full profile's code path (15 epochs of batch 256, the
same chapters) in minutes, to check the script and the chapters, not to time them.
Exit status: the build's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
STAMP = (
    ROOT / "_build" / ".jupyter_cache.cvae_lib.sha256"
)  # scripts/build_book.sh: remove it to re-execute
LOG = ROOT / "_build" / "full-book.log"

# MyST-NB's log lines (Sphinx colours them: ANSI escapes are removed first).
ANSI = re.compile(r"\x1b\[[0-9;]*m")
EXECUTING = re.compile(r"(\S+\.md): Executing notebook using")
EXECUTED = re.compile(r"(\S+\.md): Executed notebook in ([0-9.]+) seconds")
FAILED = re.compile(r"(\S+\.md): (?:WARNING: )?Executing notebook failed: (\w+)")


def fail(message: str) -> None:
    print(f"full_book: error: {message}", file=sys.stderr)
    raise SystemExit(2)


# ---- data ---------------------------------------------------------------------------


def idx_path(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    fail(
        f"{folder} has no {name}[.gz]: pass --data, the folder of four MNIST-format IDX files"
    )


def read_idx(path: Path) -> tuple[bytes, list[int], bytes]:
    """``(magic, dims, data)`` of an IDX file, gzipped or not."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return raw[:4], dims, raw[4 + 4 * ndim :]


def write_subset(source: Path, target: Path, n_train: int, n_test: int) -> Path:
    """The first ``n_train`` / ``n_test`` images and labels of ``source`` as IDX files in ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        magic, dims, data = read_idx(idx_path(source, name))
        n = min(n_train if name.startswith("train") else n_test, dims[0])
        item = int(np.prod(dims[1:], dtype=np.int64)) if len(dims) > 1 else 1
        header = magic + b"".join(d.to_bytes(4, "big") for d in [n, *dims[1:]])
        (target / name).write_bytes(header + data[: n * item])
    return target


# ---- the build, followed ------------------------------------------------------------


def high_water_mark(pid: int) -> int | None:
    """Peak resident set of a live process in bytes (``VmHWM``), or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def kernels_under(pid: int) -> list[int]:
    """The ipykernel processes among the descendants of ``pid``."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if any("ipykernel" in part for part in child.cmdline()):
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


def chapter_name(path: str) -> str:
    """``notebooks/05_training.md`` for the absolute path the log gives."""
    resolved = Path(path).resolve()
    return (
        resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else path
    )


class Follower:
    """Chapters as the build log announces them, and their kernels' peak memory."""

    def __init__(self):
        self.chapters: dict[str, dict] = {}
        self.current: str | None = None
        self.kernel_owner: dict[int, str] = {}
        self.lock = threading.Lock()
        self.start = time.monotonic()

    def line(self, text: str) -> None:
        now = time.monotonic()
        text = ANSI.sub("", text)
        with self.lock:
            if match := EXECUTING.search(text):
                self.finish(now)
                name = chapter_name(match.group(1))
                self.current = name
                self.chapters[name] = {
                    "chapter": name,
                    "started_s": round(now - self.start, 1),
                    "status": "running",
                    "peak_rss_bytes": 0,
                }
                print(f"full_book: {name}: executing", flush=True)
            elif (match := EXECUTED.search(text)) and self.current:
                self.chapters[self.current]["myst_nb_seconds"] = float(match.group(2))
                self.finish(now, "ok")
            elif match := FAILED.search(text):
                # Sphinx may hold warnings back until the pages are read: find the chapter by name.
                name = chapter_name(match.group(1))
                if name == self.current:
                    self.finish(now)
                if name in self.chapters:
                    self.chapters[name]["status"] = f"failed ({match.group(2)})"
                    print(f"full_book: {name}: failed ({match.group(2)})", flush=True)

    def finish(self, now: float, status: str = "ok") -> None:
        if self.current is None:
            return
        record = self.chapters[self.current]
        record["status"] = status
        record["wall_s"] = round(now - self.start - record["started_s"], 1)
        peak = record["peak_rss_bytes"] / 2**20
        print(
            f"full_book: {self.current}: {status}, {record['wall_s']:.1f} s, kernel peak {peak:,.0f} MiB",
            flush=True,
        )
        self.current = None

    def poll(self, build_pid: int, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            for pid in kernels_under(build_pid):
                peak = high_water_mark(pid)
                with self.lock:
                    owner = self.kernel_owner.setdefault(pid, self.current or "")
                    if owner and peak and owner in self.chapters:
                        record = self.chapters[owner]
                        record["peak_rss_bytes"] = max(record["peak_rss_bytes"], peak)


def cpu_name() -> str:
    """The CPU's model name, and whether it has AVX-512, which speeds oneDNN up several times."""
    from hardware import cpu_info  # benchmarks/, beside this script

    info = cpu_info()
    return info["model"] + (" with AVX-512" if "avx512f" in info["flags"] else "")


def build(env: dict, follower: Follower) -> tuple[int, float, int]:
    """Run scripts/build_book.sh, its output to LOG and through ``follower``:
    ``(status, wall seconds, peak RSS of the build's largest process in bytes)``."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    STAMP.unlink(
        missing_ok=True
    )  # build_book.sh then empties the execution cache: every chapter runs
    started = time.monotonic()
    with open(LOG, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "build_book.sh")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        stop = threading.Event()
        poller = threading.Thread(
            target=follower.poll, args=(process.pid, stop), daemon=True
        )
        poller.start()
        for text in process.stdout:
            log.write(text)
            log.flush()  # the log can be followed with tail -f
            follower.line(text)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        poller.join()
    with follower.lock:
        follower.finish(time.monotonic())
    return process.returncode, time.monotonic() - started, usage.ru_maxrss * 1024


def table(result: dict) -> str:
    lines = [
        f"{'chapter':32s} {'status':28s} {'wall s':>8s} {'MyST-NB s':>9s} {'kernel peak MiB':>15s}"
    ]
    for record in result["chapters"]:
        lines.append(
            f"{record['chapter']:32s} {record['status']:28s} {record.get('wall_s', float('nan')):8.1f} "
            f"{record.get('myst_nb_seconds', float('nan')):9.1f} {record['peak_rss_bytes'] / 2**20:15,.0f}"
        )
    b = result["build"]
    lines.append(
        f"{'whole build':32s} {'ok' if b['status'] == 0 else 'failed':28s} {b['wall_s']:8.1f} "
        f"{'':9s} {b['peak_rss_bytes'] / 2**20:15,.0f}  (largest process)"
    )
    subset = (
        f" (the first {result['subset'][0]:,} + {result['subset'][1]:,} images)"
        if result["subset"]
        else ""
    )
    lines.append(
        f"CVAE_PROFILE=full, data {result['data']}{subset}, on {result['cpu']}, {result['cores']} cores"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEBIAN_FASHION_MNIST,
        help="folder of the four MNIST-format IDX files (default: Debian's Fashion-MNIST)",
    )
    parser.add_argument(
        "--subset",
        type=int,
        nargs=2,
        metavar=("N_TRAIN", "N_TEST"),
        help="build on the first N_TRAIN / N_TEST images only (a check, not a timing)",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        help="where trained runs go (default: $CVAE_RUNS or _runs/)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "full-book.json",
        help="where the results go (default: benchmarks/results/full-book.json)",
    )
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        fail(
            f"{args.data} is not a folder of MNIST-format files"
            + (
                ": apt-get install dataset-fashion-mnist"
                if args.data == DEBIAN_FASHION_MNIST
                else ""
            )
        )
    for name in IDX_FILES:
        idx_path(args.data, name)

    with tempfile.TemporaryDirectory(prefix="cvae-full-book-") as scratch:
        data = (
            write_subset(args.data, Path(scratch) / "idx", *args.subset)
            if args.subset
            else args.data
        )
        env = {**os.environ, "CVAE_PROFILE": "full", "CVAE_DATA": str(data)}
        if args.runs:
            env["CVAE_RUNS"] = str(args.runs.resolve())
        print(
            f"full_book: building the book with CVAE_PROFILE=full, CVAE_DATA={data}"
            f"{f' (first {args.subset[0]:,} + {args.subset[1]:,} images of {args.data})' if args.subset else ''};"
            f" log in {LOG.relative_to(ROOT)}",
            flush=True,
        )
        follower = Follower()
        status, wall, peak = build(env, follower)

    result = {
        "profile": "full",
        "data": str(args.data),
        "subset": args.subset,
        "runs": env.get("CVAE_RUNS", str(ROOT / "_runs")),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "chapters": list(follower.chapters.values()),
        "build": {"status": status, "wall_s": round(wall, 1), "peak_rss_bytes": peak},
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.json.with_name(f".{args.json.name}.tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, args.json)  # never half-written
    print(f"full_book: wrote {args.json}")
    if status != 0:
        print(
            f"full_book: the build failed (exit status {status}); see {LOG.relative_to(ROOT)}",
            file=sys.stderr,
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
