"""The chapters as a reader runs them outside the book: as Jupyter notebooks.

- A chapter converted by Jupytext and executed by nbclient, as a reader's Jupyter runs
  it (no nbval, no Jupyter Book): every cell runs without an error.
- The executed chapter rewritten for download (``book/_ext/reader_notebook.py``): the
  install note comes first, and the book's roles become the text the book shows.
- The ``lab`` extra: JupyterLab's server opens a ``.md`` chapter as a notebook through
  Jupytext's contents manager (skipped where the extra is not installed).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import reader_notebook  # noqa: E402

SHORT_CHAPTER = ROOT / "notebooks" / "01_theory.md"


def test_a_chapter_converted_by_jupytext_runs_in_nbclient():
    """Chapter 1 as ``jupytext`` converts it, executed cell by cell by ``nbclient`` in
    the chapters' folder: no error, and the glued numbers and figures are produced."""
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(SHORT_CHAPTER)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(SHORT_CHAPTER.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ]
    assert not [o for o in outputs if o.output_type == "error"]
    glued = reader_notebook.glued_values(notebook)
    assert {"kl_analytic", "kl_mc", "reference_weight"} <= set(glued), sorted(glued)
    assert float(glued["kl_analytic"]) > 0


def _executed_like_myst_nb() -> nbformat.NotebookNode:
    """A small executed notebook with outputs as ``myst_nb.glue(..., display=False)`` writes them."""
    notebook = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("glue('kl', 3.14159, display=False)")
    code.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"application/papermill.record/text/plain": "3.14159"},
            metadata={
                "scrapbook": {
                    "name": "kl",
                    "mime_prefix": "application/papermill.record/",
                }
            },
        )
    ]
    text = (
        "The KL is {glue:text}`kl:.2f` nats, from {py:func}`cvae_lib.encoder.posterior_distribution` "
        "and {py:meth}`~cvae_lib.model.ConditionalVAE.objective` {cite}`kingma2014autoencoding`.\n\n"
        '```{raw} html\n<div id="x"></div>\n```\n'
    )
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# A chapter"),
        code,
        nbformat.v4.new_markdown_cell(text),
    ]
    return notebook


def test_the_download_starts_with_the_install_note_and_shows_roles_as_text():
    authors = reader_notebook.bibliography_labels(ROOT / "book" / "references.bib")
    reader = reader_notebook.reader_notebook(
        _executed_like_myst_nb(), title="The book", authors=authors
    )
    nbformat.validate(reader)
    first = reader.cells[0]
    assert first.cell_type == "markdown" and 'pip install -e ".[lab]"' in first.source
    assert "The book" in first.source
    text = reader.cells[3].source
    assert "The KL is 3.14 nats" in text
    assert "`cvae_lib.encoder.posterior_distribution`" in text and "`objective`" in text
    assert "(Kingma and Welling, 2014)" in text
    assert "{" not in text, text  # no role or directive left
    assert "```{raw}" not in text and "book's web page" in text
    assert (
        reader.cells[2].outputs == _executed_like_myst_nb().cells[1].outputs
    )  # outputs kept


def test_glued_values_also_come_from_myst_nbs_glue_file():
    """MyST-NB moves the glue outputs out of the executed notebook into ``<page>.glue.json``."""
    executed = _executed_like_myst_nb()
    executed.cells[1].outputs = []
    glue_file = {
        "kl": {
            "output_type": "display_data",
            "data": {"text/plain": "2.5"},
            "metadata": {
                "scrapbook": {
                    "name": "kl",
                    "mime_prefix": "application/papermill.record/",
                }
            },
        }
    }
    reader = reader_notebook.reader_notebook(
        executed, title="The book", glue_data=glue_file
    )
    assert "The KL is 2.50 nats" in reader.cells[3].source


def test_a_glossary_term_becomes_the_term_in_italics():
    text = "the {term}`ELBO` and {term}`the bound <importance-weighted bound>`."
    assert (
        reader_notebook.degrade_markdown(text, {}, {}) == "the *ELBO* and *the bound*."
    )


def test_an_unknown_glue_key_stays_visible_as_its_name():
    assert (
        reader_notebook.degrade_markdown("x = {glue:text}`missing:.2f`.", {}, {})
        == "x = `missing`."
    )


def test_an_included_library_object_becomes_its_source():
    """Chapter 5 shows the training step with ``{literalinclude}``; the download shows the
    same lines as a Python code block, method and decorated closure included."""
    chapter = (ROOT / "notebooks" / "05_training.md").read_text(encoding="utf-8")
    blocks = reader_notebook.LITERALINCLUDE.findall(chapter)
    assert len(blocks) == 2
    text = reader_notebook.degrade_markdown(
        "```{literalinclude} ../cvae_lib/train.py\n:pyobject: make_train_step\n"
        ":language: python\n```\nand\n"
        "```{literalinclude} ../cvae_lib/model.py\n:pyobject: ConditionalVAE.objective\n```",
        {},
        {},
    )
    assert "literalinclude" not in text
    assert text.startswith("```python\ndef make_train_step(")
    assert "    @tf.function(" in text and "with tf.GradientTape() as tape:" in text
    assert "\n```\nand\n```python\ndef objective(\n    self," in text
    assert text.rstrip().endswith("return loss\n```")


def test_an_admonition_becomes_a_paragraph_with_its_title():
    """The chapters' exercises and solutions are colon-fenced admonitions, a solution with
    ``:class: dropdown``; the download shows each as a paragraph led by its bold title."""
    chapter = (ROOT / "notebooks" / "01_theory.md").read_text(encoding="utf-8")
    assert len(reader_notebook.ADMONITION.findall(chapter)) >= 2
    text = reader_notebook.degrade_markdown(
        ":::{admonition} Exercise 1.1\nWork out $a$.\n:::\n\ntext\n\n"
        ":::{admonition} Solution 1.1\n:class: dropdown\nIt is\n$b$.\n:::",
        {},
        {},
    )
    assert (
        text
        == "**Exercise 1.1.** Work out $a$.\n\ntext\n\n**Solution 1.1.** It is\n$b$."
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyter_lab_opens_a_markdown_chapter_as_a_notebook(tmp_path):
    """``pip install -e ".[lab]"``: the server's contents API returns ``01_theory.md`` as
    a notebook (Jupytext's contents manager), with the chapter's code cells."""
    lab = Path(sys.executable).with_name("jupyter-lab")
    if not lab.exists():
        pytest.skip("JupyterLab is not installed: pip install -e '.[lab]'")
    port, token = _free_port(), "cvae-test"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    server = subprocess.Popen(
        [
            str(lab),
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={ROOT}",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/api/contents/notebooks/01_theory.md?type=notebook&content=1"
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    model = json.load(response)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"jupyter lab did not answer: {server.stderr.read().decode()[-2000:]}"
                    )
                time.sleep(0.5)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    assert model["type"] == "notebook"
    cells = model["content"]["cells"]
    source = SHORT_CHAPTER.read_text(encoding="utf-8")
    assert sum(cell["cell_type"] == "code" for cell in cells) == source.count(
        "```{code-cell}"
    )
