"""The book's Sphinx extension: every executed chapter as a notebook, and its run time.

- Each chapter (a page that MyST-NB executed) gets its executed notebook, rewritten for readers
  (:mod:`reader_notebook`), as ``_sources/<page>.ipynb``, and sets the theme's
  ``ipynb_source``, so sphinx-book-theme's download menu offers ``.ipynb`` (the theme
  does this itself only when a launch button, Binder or Colab, is configured; this book
  loads nothing from third-party servers).
- Under each such page's title a line gives its run time from MyST-NB's execution
  metadata, links the notebook and the build status page (machine, versions, profile).
"""

from __future__ import annotations

import json
import os
import posixpath
from functools import lru_cache
from pathlib import Path

import nbformat
from docutils import nodes
from myst_nb.sphinx_ import NbMetadataCollector
from reader_notebook import bibliography_labels, reader_notebook
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

STATUS_DOC = "book/status"


def is_chapter(env, docname: str) -> bool:
    """A page that MyST-NB executed, other than the build status page itself."""
    return (
        docname != STATUS_DOC
        and NbMetadataCollector.get_exec_data(env, docname) is not None
    )


def executed_notebook(app: Sphinx, pagename: str) -> Path:
    """Where MyST-NB wrote the executed notebook of a page (``_build/jupyter_execute/``)."""
    return Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"


def notebook_download(pagename: str) -> str:
    """The download's path inside the built HTML: beside the page's source copy."""
    return f"_sources/{pagename}.ipynb"


@lru_cache(maxsize=None)
def _authors(bibfiles: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for bibfile in bibfiles:
        labels.update(bibliography_labels(Path(bibfile)))
    return labels


def write_reader_notebook(
    app: Sphinx, pagename: str, templatename, context, doctree
) -> None:
    """``html-page-context``, before the theme's buttons: write the page's notebook, offer it."""
    executed = executed_notebook(app, pagename)
    if not is_chapter(app.env, pagename) or not executed.is_file():
        return
    glue_file = executed.with_suffix(".glue.json")
    glue_data = (
        json.loads(glue_file.read_text(encoding="utf-8")) if glue_file.is_file() else {}
    )
    bibfiles = tuple(str(Path(app.srcdir, name)) for name in app.config.bibtex_bibfiles)
    notebook = reader_notebook(
        nbformat.read(executed, as_version=4),
        glue_data=glue_data,
        title=app.config.html_title or app.config.project,
        authors=_authors(bibfiles),
    )
    target = Path(app.outdir, notebook_download(pagename))
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    nbformat.write(notebook, temporary)
    os.replace(temporary, target)  # a reader never downloads a half-written file
    context["ipynb_source"] = f"{pagename}.ipynb"


class RunTimeLine(SphinxPostTransform):
    """Under the title of an executed page: its run time on the build machine."""

    default_priority = 8  # before the references are resolved (10)
    formats = ("html",)

    def run(self, **kwargs) -> None:
        docname = self.env.docname
        data = NbMetadataCollector.get_exec_data(self.env, docname)
        if not is_chapter(self.env, docname) or data.get("runtime") is None:
            return
        section = next(iter(self.document.findall(nodes.section)), None)
        if section is None or not isinstance(section[0], nodes.title):
            return
        line = nodes.paragraph(classes=["cvae-runtime"])
        line += nodes.emphasis(
            text=f"This page's code ran in {data['runtime']:.1f} s when the book was built"
        )
        line += nodes.Text(" (the machine, versions and profile: ")
        link = pending_xref(
            refdoc=docname,
            reftarget="/" + STATUS_DOC,
            reftype="doc",
            refdomain="std",
            refexplicit=True,
            refwarn=True,
        )
        link += nodes.inline(text="build status")
        line += link
        line += nodes.Text("). Run it yourself: ")
        download = posixpath.relpath(
            notebook_download(docname), posixpath.dirname(docname) or "."
        )
        line += nodes.reference(
            text=f"{posixpath.basename(docname)}.ipynb",
            refuri=download,
            classes=["cvae-notebook-download"],
        )
        line += nodes.Text(", the executed notebook.")
        section.insert(1, line)


def setup(app: Sphinx) -> dict:
    app.connect(
        "html-page-context", write_reader_notebook, priority=500
    )  # the theme's buttons: 501
    app.add_post_transform(RunTimeLine)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
