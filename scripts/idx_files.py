"""Digits written as MNIST's four IDX files, so the full profile's path (``CVAE_DATA``
naming a folder) runs on small local data: ``python scripts/idx_files.py OUT_DIR``
writes the offline sample there (CI does, in ``.ci/run``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from cvae_lib.data import IDX_FILES, IDX_IMAGES, IDX_LABELS, Digits, load_digits
from cvae_lib.errors import CvaeError


def write_idx_files(digits: Digits, directory) -> Path:
    """``digits`` as the four IDX files in ``directory``, grey levels rounded to bytes;
    each file appears whole or not at all."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    splits = ((digits.x_train, digits.y_train), (digits.x_test, digits.y_test))
    for (images_name, labels_name), (images, labels) in zip(IDX_FILES, splits):
        grey = np.rint(np.asarray(images, np.float32).reshape(-1, 28, 28) * 255)
        for name, array, magic in (
            (images_name, grey, IDX_IMAGES),
            (labels_name, labels, IDX_LABELS),
        ):
            # the magic number, each dimension as a big-endian int32, then the bytes
            array = np.ascontiguousarray(array, np.uint8)
            dims = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
            partial = directory / f".{name}.tmp"
            partial.write_bytes(magic.to_bytes(4, "big") + dims + array.tobytes())
            os.replace(partial, directory / name)
    return directory


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(
            "usage: python scripts/idx_files.py OUT_DIR  (writes the offline sample as IDX files)",
            file=sys.stderr,
        )
        return 2
    try:
        digits = load_digits("sample")
        out = write_idx_files(digits, argv[0])
    except (CvaeError, OSError) as err:
        print(f"cvae_lib: error: {err}", file=sys.stderr)
        return 1
    print(
        f"wrote {len(digits.x_train):,} training and {len(digits.x_test):,} test digits to {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
