"""An executed chapter as a reader downloads it: a plain Jupyter notebook.

MyST-NB leaves each executed chapter in ``_build/jupyter_execute/`` with its outputs.
What only the book renders is rewritten here so that Jupyter, JupyterLab or Colab show
readable text: a ``{glue:text}`` role becomes the value the chapter glued (formatted as
the book formats it), a ``{py:...}`` cross reference becomes the object's name in code
font, a ``{cite}`` becomes "(Author, year)", a ``{term}`` the term in italics, a
``{literalinclude}`` of a library object becomes a Python code block with that object's
source, an ``{admonition}`` (the chapters' exercises and their solutions) becomes a
paragraph that starts with its title in bold, and a ``{raw} html`` block becomes a note
that points to the book. A first cell says what to install and where the notebook runs.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import nbformat
from myst_nb.core.variables import format_plain_text

GLUE_PREFIX = "application/papermill.record/"

INSTALL_NOTE = """\
**Running this notebook.** It is a chapter of *{title}*, executed when the book was
built, outputs included. To run it yourself, clone the book's repository and install
the library with the packages the chapters use (Python 3.10 to 3.12; add
`-c constraints.txt` for the exact versions of a tested installation, on Python 3.11):

```bash
python3 -m venv .venv && .venv/bin/pip install -e ".[lab]"
```

Then put this file in the repository's `notebooks/` folder (the chapters run there and
import `cvae_lib`) and open it with `.venv/bin/jupyter lab`; the `.md` chapters beside it
open as notebooks too. On a GPU, add the `gpu` extra (`".[lab,gpu]"`); the `full` profile
then trains on full MNIST (`CVAE_PROFILE`, see the README). Trained runs are kept in
`_runs/` (or `$CVAE_RUNS`) and reused.
"""

GLUE_TEXT = re.compile(r"\{glue:text\}`([^`]+)`")
GLUE_ANY = re.compile(r"\{glue(?::[a-z]+)?\}`([^`]+)`")
PY_ROLE = re.compile(r"\{py:[a-z]+\}`([^`]+)`")
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
TERM = re.compile(r"\{term\}`([^`<]+?)\s*(?:<[^`]*>)?`")
RAW_HTML = re.compile(r"```\{raw\} html\n.*?\n```", re.DOTALL)
LITERALINCLUDE = re.compile(
    r"```\{literalinclude\} (?P<path>\S+)\n(?P<options>(?::[^\n]*\n)*)```"
)
ADMONITION = re.compile(
    r"^:::\{admonition\} (?P<title>[^\n]*)\n(?::[^\n]*\n)*(?P<body>.*?)\n:::$",
    re.DOTALL | re.MULTILINE,
)
#: The folder the chapters' relative paths start from.
CHAPTERS = Path(__file__).resolve().parents[2] / "notebooks"


def included_source(match: re.Match) -> str:
    """A ``{literalinclude}`` block as a Python code block: the ``:pyobject:`` named (a
    function, a class, or ``Class.method``) or else the whole file."""
    path = (CHAPTERS / match.group("path")).resolve()
    source = path.read_text(encoding="utf-8")
    wanted = re.search(r":pyobject:\s*(\S+)", match.group("options"))
    if wanted:
        scope = ast.parse(source)
        for name in wanted.group(1).split("."):
            scope = next(
                node
                for node in scope.body
                if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                and node.name == name
            )
        start = min([scope.lineno] + [d.lineno for d in scope.decorator_list])
        lines = source.splitlines()[start - 1 : scope.end_lineno]
        indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
        source = "\n".join(line[indent:] for line in lines)
    return f"```python\n{source.rstrip()}\n```"


def _plain_text(output: dict, prefix: str = "") -> str | None:
    text = output.get("data", {}).get(prefix + "text/plain")
    if text is None:
        text = output.get("data", {}).get("text/plain")
    return "".join(text) if isinstance(text, list) else text


def glued_values(notebook, glue_data: dict | None = None) -> dict[str, str]:
    """``{name: text/plain}`` of every ``glue(name, value)``: the outputs still in the
    notebook, and ``glue_data``, the ``<page>.glue.json`` into which MyST-NB moves them."""
    values = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            scrapbook = output.get("metadata", {}).get("scrapbook")
            if (
                scrapbook
                and _plain_text(output, scrapbook.get("mime_prefix", "")) is not None
            ):
                values[scrapbook["name"]] = _plain_text(
                    output, scrapbook.get("mime_prefix", "")
                )
    for name, output in (glue_data or {}).items():
        if _plain_text(output) is not None:
            values[name] = _plain_text(output)
    return values


def python_name(target: str) -> str:
    """How a ``{py:...}`` role shows its target: ``~a.b.c`` as ``c``, ``title <a.b>`` as ``title``."""
    explicit = re.fullmatch(r"(.*?)\s*<([^>]+)>", target)
    if explicit:
        return explicit.group(1)
    target = target.lstrip("!")
    return target.rsplit(".", 1)[-1] if target.startswith("~") else target


def citation(keys: str, authors: dict[str, str]) -> str:
    """``(Kingma and Welling, 2014; ...)`` for the comma-separated bibliography keys."""
    return (
        "("
        + "; ".join(authors.get(key.strip(), key.strip()) for key in keys.split(","))
        + ")"
    )


def bibliography_labels(bibfile: Path) -> dict[str, str]:
    """``{key: "Surname et al., year"}`` for every entry of a BibTeX file."""
    from pybtex.database import parse_file

    labels = {}
    for key, entry in parse_file(str(bibfile)).entries.items():
        people = entry.persons.get("author", [])
        surnames = [" ".join(person.last_names) for person in people]
        if len(surnames) > 2:
            who = f"{surnames[0]} et al."
        else:
            who = " and ".join(surnames) or key
        labels[key] = f"{who}, {entry.fields.get('year', 'n.d.')}".replace(
            "{", ""
        ).replace("}", "")
    return labels


def degrade_markdown(text: str, glued: dict[str, str], authors: dict[str, str]) -> str:
    """Markdown with the book-only roles and blocks replaced by readable text."""

    def glue_text(match: re.Match) -> str:
        key, _, fmt = match.group(1).partition(":")
        key = key.split("::", 1)[-1]
        if key not in glued:
            return f"`{key}`"
        return format_plain_text(glued[key], fmt or "s")

    text = GLUE_TEXT.sub(glue_text, text)
    text = GLUE_ANY.sub(lambda m: f"`{m.group(1)}`", text)
    text = PY_ROLE.sub(lambda m: f"`{python_name(m.group(1))}`", text)
    text = CITE.sub(lambda m: citation(m.group(1), authors), text)
    text = TERM.sub(lambda m: f"*{m.group(1)}*", text)
    text = LITERALINCLUDE.sub(included_source, text)
    text = ADMONITION.sub(lambda m: f"**{m.group('title')}.** {m.group('body')}", text)
    return RAW_HTML.sub(
        "*(An interactive figure here runs in the book's web page.)*", text
    )


def reader_notebook(
    executed,
    *,
    title: str,
    glue_data: dict | None = None,
    authors: dict[str, str] | None = None,
):
    """A copy of an executed chapter for readers: the install note first, roles as text
    (``glue_data``: MyST-NB's ``<page>.glue.json``, the values the chapter glued)."""
    notebook = copy.deepcopy(executed)
    glued = glued_values(notebook, glue_data)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = degrade_markdown(cell.source, glued, authors or {})
    note = nbformat.v4.new_markdown_cell(INSTALL_NOTE.format(title=title))
    note.metadata["tags"] = ["reader-install-note"]
    if notebook.nbformat_minor < 5:
        note.pop("id", None)  # cell ids arrived with format 4.5
    notebook.cells.insert(0, note)
    return notebook
