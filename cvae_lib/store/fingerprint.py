"""Fingerprints of the code that computes a cached result, so changed code never leaves an old result looking valid:
every module's syntax tree without docstrings, except those in :data:`NOT_TRAINING` or :data:`NOT_EVALUATION`."""

import ast
import hashlib
from pathlib import Path

#: Modules of the package that never run while a model trains, by path in the package.
NOT_TRAINING = frozenset(
    {
        "__main__.py",
        "cli.py",
        "evaluate.py",
        "judge.py",
        "plots.py",
        "checks.py",
        "pixel_models.py",
        "comparison_runs.py",  # names the compared runs; each run's key holds its settings
    }
)
#: Modules of the package that never run while a model is evaluated.
NOT_EVALUATION = frozenset(
    {
        "__main__.py",
        "cli.py",
        "plots.py",
        "checks.py",
        "pixel_models.py",
        "comparison_runs.py",
    }
)
#: The judge's own code: its network and training (judge.py) and the pipeline it reads (data.py).
JUDGE_MODULES = ("judge.py", "data.py")


def module_digest(source: str) -> str:
    """SHA-256 of one module's code, blind to comments, docstrings and layout."""
    tree = ast.parse(source)
    for node in ast.walk(tree):  # drop every statement that is only a string constant
        if isinstance(getattr(node, "body", None), list):
            node.body = [
                stmt
                for stmt in node.body
                if not (
                    isinstance(stmt, ast.Expr)
                    and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                )
            ] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()


def code_fingerprint(package_dir=None, *, leave_out=NOT_TRAINING, only=None) -> str:
    """SHA-256 over the package's modules (``cvae_lib`` by default): all but ``leave_out``,
    or just the file names in ``only``. The default is the code that training runs."""
    package_dir = Path(package_dir or Path(__file__).resolve().parents[1])
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        name = path.relative_to(package_dir).as_posix()
        if (name not in only) if only is not None else (name in leave_out):
            continue
        digest.update(
            f"{name}\0{module_digest(path.read_text(encoding='utf-8'))}\0".encode()
        )
    return digest.hexdigest()


if __name__ == "__main__":
    # The whole package's, for scripts/build_book.sh (run as a file: no TensorFlow import).
    print(code_fingerprint(leave_out=()))
