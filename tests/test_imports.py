"""The library's shape, read from its syntax trees (no import): who may import whom, and sizes.

Each module has a room, and the rooms are stacked: a module imports only from rooms below
its own. The model, its training and sampling sit below the storage layer
(``cvae_lib/store/``), so storage imports the model and never the reverse.

Sizes: no function is over 60 lines as formatted; the library is at most 2,800 lines
with every bracketed expression counted as one line (:func:`unwrapped_lines`), a count
that formatting at 88 columns does not change."""

from __future__ import annotations

import ast
import importlib
import io
import tokenize
from pathlib import Path

import pytest

import cvae_lib

PACKAGE = Path(cvae_lib.__file__).resolve().parent

#: Rooms from the ground floor up; a module may import only from a lower room.
ROOMS = [
    ("foundation", {"backend", "errors"}),
    ("settings", {"config", "progress"}),
    ("data", {"data"}),
    ("networks", {"prior", "encoder", "decoder"}),
    ("model", {"model"}),
    ("baselines", {"baselines", "pixel_models"}),
    ("training", {"train"}),
    ("sampling", {"sampling"}),
    ("storage files", {"store", "store.files", "store.fingerprint"}),
    ("storage", {"store.cache", "store.checkpoint"}),
    ("runs", {"store.runs"}),
    ("judge", {"judge"}),
    ("evaluation", {"evaluate"}),
    ("figures and export", {"plots", "explorer"}),
    ("the book", {"book", "comparison_runs"}),
    ("the book's checks", {"checks"}),
    ("command line", {"cli"}),
    ("entry point", {"__main__"}),
]
#: The public API (``cvae_lib/__init__.py``) gathers names from every room.
PUBLIC = "__init__"
#: Modules that must never import the storage layer.
BELOW_STORAGE = {
    name
    for _, names in ROOMS[: [room for room, _ in ROOMS].index("storage files")]
    for name in names
}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``store.runs`` for ``cvae_lib/store/runs.py``, ``store`` for its ``__init__.py``."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imported_modules(
    name: str, source: str, known: set, packages=("__init__", "store")
) -> set:
    """The package's modules that module ``name`` (source ``source``) imports; ``known``: all of them."""
    package = (
        []
        if name == "__init__"
        else name.split(".")
        if name in packages
        else name.split(".")[:-1]
    )
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(
                a.name.removeprefix("cvae_lib.")
                for a in node.names
                if a.name.startswith("cvae_lib.")
            )
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            stem = ".".join(
                package[: len(package) - node.level + 1]
                + ([node.module] if node.module else [])
            )
        elif node.module and (node.module + ".").startswith("cvae_lib."):
            stem = node.module.removeprefix("cvae_lib").lstrip(".")
        else:
            continue
        submodules = [f"{stem}.{a.name}".lstrip(".") for a in node.names]
        found.update([s for s in submodules if s in known] or [stem])
    return found & known


def import_graph(package: Path = PACKAGE, edits: dict | None = None) -> dict:
    """``{module: modules it imports}`` over the package; ``edits`` replaces modules' sources."""
    sources = {
        module_name(p, package): p.read_text(encoding="utf-8")
        for p in package.rglob("*.py")
    }
    sources["__init__"] = sources.pop("", sources.get("__init__", ""))
    sources.update(edits or {})
    known = set(sources)
    return {
        name: imported_modules(name, source, known) for name, source in sources.items()
    }


def room_of(name: str) -> int | None:
    return next(
        (floor for floor, (_, names) in enumerate(ROOMS) if name in names), None
    )


def violations(graph: dict) -> list[str]:
    """Every broken rule of ``graph``, one line each."""
    found = []
    for name, imports in sorted(graph.items()):
        if name == PUBLIC:
            continue
        floor = room_of(name)
        if floor is None:
            found.append(
                f"{name} has no room: add it to ROOMS in tests/test_imports.py"
            )
            continue
        for target in sorted(imports):
            if target == PUBLIC:
                found.append(f"{name} imports the public API (cvae_lib/__init__.py)")
            elif name in BELOW_STORAGE and (
                target == "store" or target.startswith("store.")
            ):
                found.append(
                    f"{name} ({ROOMS[floor][0]}) imports the storage layer ({target})"
                )
            elif room_of(target) is not None and room_of(target) >= floor:
                found.append(
                    f"{name} ({ROOMS[floor][0]}) imports {target} ({ROOMS[room_of(target)][0]}), "
                    "which is not below it"
                )
    return found


def test_every_import_points_down_and_nothing_below_storage_imports_it():
    graph = import_graph()
    assert {"model", "train", "sampling", "store.runs", "store.checkpoint"} <= set(
        graph
    )
    assert (
        "store.checkpoint" in graph["store.runs"] and "model" in graph["store.runs"]
    )  # the graph is read
    assert violations(graph) == []


@pytest.mark.parametrize(
    "module, line",
    [
        ("model", "from .store.files import atomic_write\n"),
        ("train", "from .store import checkpoint\n"),
        ("sampling", "import cvae_lib.store.runs\n"),
        ("prior", "from cvae_lib.store.cache import key\n"),
    ],
)
def test_the_rules_catch_a_model_module_that_imports_storage(module, line):
    source = (PACKAGE / f"{module}.py").read_text(encoding="utf-8") + line
    assert any(
        f"{module} (" in v and "imports the storage layer" in v
        for v in violations(import_graph(edits={module: source}))
    )


def test_the_rules_catch_an_upward_import_and_a_module_without_a_room():
    model = (PACKAGE / "model.py").read_text(
        encoding="utf-8"
    ) + "from .train import train\n"
    assert violations(import_graph(edits={"model": model})) == [
        "model (model) imports train (training), which is not below it"
    ]
    assert violations(import_graph(edits={"lab": "X = 1\n"})) == [
        "lab has no room: add it to ROOMS in tests/test_imports.py"
    ]


def unwrapped_lines(source: str) -> int:
    """Lines of ``source`` with every bracketed expression counted as if on one line, so the
    count does not change when a formatter wraps a long call over several lines."""
    depth, start, wrapped = 0, 0, 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.OP and token.string in "([{":
            if depth == 0:
                start = token.start[0]
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}":
            depth -= 1
            if depth == 0:
                wrapped += token.end[0] - start
    return len(source.splitlines()) - wrapped


def test_unwrapped_lines_ignore_wrapping():
    one = "x = f(a, b)\n"
    assert unwrapped_lines(one) == unwrapped_lines("x = f(\n    a,\n    b,\n)\n") == 1
    assert unwrapped_lines('"""Two\nlines."""\n' + one) == 3


def test_the_library_stays_small():
    lines = sum(
        unwrapped_lines(p.read_text(encoding="utf-8")) for p in PACKAGE.rglob("*.py")
    )
    assert lines <= 2800, (
        f"cvae_lib has {lines} lines, bracketed expressions unwrapped (at most 2,800)"
    )
    long = [
        f"{p.relative_to(PACKAGE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for p in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno >= 60
    ]
    assert long == [], "functions over 60 lines: " + ", ".join(long)


def test_the_public_api():
    from cvae_lib import (
        ConditionalVAE,
        CvaeError,
        ModelConfig,
        TrainConfig,
        load_digits,
        train_or_load,
    )

    imported = set(locals())  # the six names imported above, and nothing else
    assert callable(train_or_load) and callable(load_digits)
    assert (
        issubclass(CvaeError, Exception)
        and ConditionalVAE(ModelConfig(base_depth=2)).kind == "cvae"
        and TrainConfig.for_data(100).batch_size == 128
    )
    # every name imported above is also exported by ``from cvae_lib import *``
    assert set(cvae_lib.__all__) >= imported
    assert importlib.import_module("cvae_lib.train").__name__ == "cvae_lib.train"
    assert not callable(
        getattr(cvae_lib, "train")
    )  # the module, not hidden by a function of its name
