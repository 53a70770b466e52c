"""cvae_lib.explorer: the file the book's latent explorer runs reproduces the decoder.

The JavaScript side is tested in a real browser by tests/test_browser.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from cvae_lib.errors import CvaeError
from cvae_lib.explorer import (
    PREFIX,
    explorer_images,
    read_explorer_data,
    write_explorer_data,
)
from cvae_lib.sampling import class_means, decode_images


def test_the_file_reproduces_the_decoder_and_holds_the_plane(
    tiny_model, tiny_digits, tmp_path
):
    path = write_explorer_data(
        tiny_model, tiny_digits.x_test, tiny_digits.y_test, tmp_path / "a" / "data.js"
    )
    assert path.read_text().startswith(PREFIX)
    data = read_explorer_data(path)
    assert [layer["kind"] for layer in data["layers"]] == ["conv2d_transpose"] * 6 + [
        "conv2d"
    ]
    assert [layer["strides"] for layer in data["layers"]].count([2, 2]) == 2
    codes = np.random.default_rng(0).normal(scale=3, size=(50, 2))
    expected = decode_images(tiny_model, codes, np.zeros(50))
    np.testing.assert_array_equal(explorer_images(data, codes), expected)
    assert np.asarray(data["points"]).shape == (len(tiny_digits.x_test), 2)
    assert data["labels"] == tiny_digits.y_test.tolist()
    np.testing.assert_allclose(data["class_means"], class_means(tiny_model), atol=1e-6)


def test_models_the_page_cannot_draw_are_refused(tiny_digits, tmp_path):
    from cvae_lib.config import ModelConfig
    from cvae_lib.model import ConditionalVAE

    wide = ConditionalVAE(ModelConfig(latent_dim=3, base_depth=2))
    with pytest.raises(CvaeError, match="2-D latent plane"):
        write_explorer_data(
            wide, tiny_digits.x_test[:5], tiny_digits.y_test[:5], tmp_path / "data.js"
        )
    assert not (tmp_path / "data.js").exists()


def test_other_files_are_refused(tmp_path):
    (tmp_path / "other.js").write_text("var x = 1;\n")
    with pytest.raises(CvaeError, match="not an explorer data file"):
        read_explorer_data(tmp_path / "other.js")
