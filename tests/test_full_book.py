"""The full-size rehearsal's plumbing (benchmarks/full_book.py), without building a book:
reading MyST-NB's log lines, the small IDX subset it builds on, its error for bad data."""

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import full_book  # noqa: E402

RED, PLAIN = "\x1b[91m", "\x1b[39;49;00m"


def test_the_log_gives_each_chapter_its_status_and_time(capsys):
    root = full_book.ROOT
    follower = full_book.Follower()
    for line in [
        f"{root}/notebooks/01_theory.md: Executing notebook using local CWD [mystnb]",
        f"{root}/notebooks/01_theory.md: Executed notebook in 8.41 seconds [mystnb]",
        f"{root}/notebooks/01_theory.md: Cached executed notebook: ID=1 [mystnb]",
        f"{root}/notebooks/05_training.md: Executing notebook using local CWD [mystnb]",
        f"{root}/notebooks/06_manifold.md: Executing notebook using local CWD [mystnb]",
        f"{RED}{root}/notebooks/05_training.md:259: WARNING: No key 'x' found in glue data [mystnb.glue]{PLAIN}",
    ]:
        follower.line(line + "\n")
    follower.finish(follower.start + 100.0)  # the build ended while chapter 6 ran
    # Sphinx prints the warnings it held back after the pages are read
    follower.line(
        f"{RED}{root}/notebooks/05_training.md: WARNING: Executing notebook failed: "
        f"CellExecutionError [mystnb.exec]{PLAIN}\n"
    )
    chapters = follower.chapters
    assert list(chapters) == [
        "notebooks/01_theory.md",
        "notebooks/05_training.md",
        "notebooks/06_manifold.md",
    ]
    assert chapters["notebooks/01_theory.md"]["status"] == "ok"
    assert chapters["notebooks/01_theory.md"]["myst_nb_seconds"] == 8.41
    assert (
        chapters["notebooks/05_training.md"]["status"] == "failed (CellExecutionError)"
    )
    assert "myst_nb_seconds" not in chapters["notebooks/05_training.md"]
    assert all(record["wall_s"] >= 0 for record in chapters.values())
    assert "05_training.md: failed (CellExecutionError)" in capsys.readouterr().out


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = (0x800 + array.ndim).to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in array.shape
    )
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_the_subset_is_the_first_images_and_loads_as_mnist_files(tmp_path):
    from cvae_lib.data import load_digits

    rng = np.random.default_rng(0)
    source = tmp_path / "full"
    source.mkdir()
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (30, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(30) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(20) % 10,
    }
    for name, array in arrays.items():
        _write_idx(source / f"{name}.gz", array)
    subset = full_book.write_subset(source, tmp_path / "small", 12, 10)
    digits = load_digits(str(subset))
    assert digits.x_train.shape[0] == 12 and digits.x_test.shape[0] == 10
    magic, dims, data = full_book.read_idx(subset / "train-images-idx3-ubyte")
    assert dims == [12, 28, 28]
    assert np.array_equal(
        np.frombuffer(data, np.uint8).reshape(12, 28, 28),
        arrays["train-images-idx3-ubyte"][:12],
    )
    _, _, labels = full_book.read_idx(subset / "t10k-labels-idx1-ubyte")
    assert list(labels) == list(arrays["t10k-labels-idx1-ubyte"][:10])


def test_a_folder_without_idx_files_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        full_book.main(["--data", str(tmp_path), "--json", str(tmp_path / "out.json")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith("full_book: error:")
        and "train-images-idx3-ubyte" in err[0]
    )
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    ("flags", "name"),
    [({"avx2", "avx512f"}, "Xeon with AVX-512"), ({"avx2", "fma"}, "Xeon")],
)
def test_the_cpu_is_named_with_avx512_or_without(monkeypatch, flags, name):
    import hardware  # benchmarks/, on the path above

    monkeypatch.setattr(
        hardware, "cpu_info", lambda: {"model": "Xeon", "mhz": None, "flags": flags}
    )
    assert full_book.cpu_name() == name
