"""The training-code fingerprint: what changes it, what does not, and runs that use it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tiny_settings import TINY_MODEL, TINY_TRAIN, finished_run

import cvae_lib
from cvae_lib.store.fingerprint import (
    JUDGE_MODULES,
    NOT_EVALUATION,
    NOT_TRAINING,
    code_fingerprint,
    module_digest,
)

PACKAGE = Path(cvae_lib.__file__).resolve().parent

CODE = '''"""Module docstring."""
SCALE = 2.0


def loss(x):
    """Why it is computed so."""
    return SCALE * x  # a comment
'''


def test_module_digest_ignores_docstrings_comments_and_layout():
    reworded = CODE.replace("Module docstring.", "Another text.").replace(
        "Why it is computed so.", "Reworded."
    )
    reformatted = reworded.replace("# a comment", "# another comment").replace(
        "SCALE * x", "SCALE*x"
    )
    assert module_digest(reformatted) == module_digest(CODE)
    no_docstring = CODE.replace('    """Why it is computed so."""\n', "")
    assert module_digest(no_docstring) == module_digest(CODE)


def test_module_digest_sees_code_changes():
    assert module_digest(CODE.replace("SCALE = 2.0", "SCALE = 1.0")) != module_digest(
        CODE
    )
    assert module_digest(CODE.replace("SCALE * x", "x * SCALE")) != module_digest(CODE)
    # a function whose body is only a docstring still differs from one with code
    assert module_digest('def f():\n    """Doc."""\n') != module_digest(
        "def f():\n    return 1\n"
    )


def _package_copy(tmp_path) -> Path:
    copy = tmp_path / "cvae_lib"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}: update this test"
    path.write_text(text.replace(old, new, 1))


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text() + code)


def test_fingerprint_follows_training_code_only(tmp_path):
    copy = _package_copy(tmp_path)
    original = code_fingerprint(copy)
    assert original == code_fingerprint(PACKAGE)  # the copy is the package
    _edit(copy / "model.py", '"""', '"""Edited docstring. ')  # prose only
    _append(copy / "plots.py", "\nUNUSED = 1\n")  # not training code
    assert code_fingerprint(copy) == original
    (copy / "new_module.py").write_text("X = 1\n")  # a new module counts until listed
    with_new = code_fingerprint(copy)
    assert with_new != original
    _append(copy / "model.py", "\nUNUSED = 1\n")  # training code
    assert code_fingerprint(copy) not in (original, with_new)


def test_evaluation_and_judge_fingerprints_cover_their_own_code(tmp_path):
    copy = _package_copy(tmp_path)
    before = {
        "judge": code_fingerprint(copy, only=JUDGE_MODULES),
        "evaluation": code_fingerprint(copy, leave_out=NOT_EVALUATION),
    }
    _append(copy / "plots.py", "\nUNUSED = 1\n")  # neither judges nor evaluates
    assert before == {
        "judge": code_fingerprint(copy, only=JUDGE_MODULES),
        "evaluation": code_fingerprint(copy, leave_out=NOT_EVALUATION),
    }
    _append(copy / "evaluate.py", "\nUNUSED = 1\n")  # evaluation, not the judge
    assert code_fingerprint(copy, only=JUDGE_MODULES) == before["judge"]
    assert code_fingerprint(copy, leave_out=NOT_EVALUATION) != before["evaluation"]
    _append(copy / "judge.py", "\nUNUSED = 1\n")
    assert code_fingerprint(copy, only=JUDGE_MODULES) != before["judge"]


def _modules_imported_by(script: str) -> set:
    """Paths in the package of the cvae_lib modules loaded after running ``script`` in a fresh Python."""
    script += (
        "\nimport pathlib, cvae_lib\nroot = pathlib.Path(cvae_lib.__file__).parent\n"
        "print(sorted(pathlib.Path(sys.modules[m].__file__).relative_to(root).as_posix()\n"
        "             for m in sys.modules if m.startswith('cvae_lib.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import sys\n" + script],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"')))


def test_evaluation_never_imports_the_modules_it_leaves_out():
    """If evaluation used a module in NOT_EVALUATION, a change to it would reuse stale reports."""
    imported = _modules_imported_by(
        "import tempfile\n"
        "from cvae_lib.config import ModelConfig, TrainConfig\n"
        "from cvae_lib.data import load_digits\n"
        "from cvae_lib.model import ConditionalVAE\n"
        "from cvae_lib.judge import load_or_train_judge\n"
        "from cvae_lib.evaluate import cached_evaluation\n"
        "digits = load_digits('sample').subset(256, 64)\n"
        "judge = load_or_train_judge(digits, epochs=1, root=tempfile.mkdtemp())\n"
        "model = ConditionalVAE(ModelConfig(base_depth=2))\n"
        "cached_evaluation(tempfile.mkdtemp(), model, digits, judge, progress='none', k=2, iw_digits=4,\n"
        "                  per_class=2, seed=0)\n"
    )
    assert {"evaluate.py", "judge.py", "sampling.py"} <= imported
    assert not imported & NOT_EVALUATION


def test_training_never_imports_the_modules_left_out():
    """If training used a module in NOT_TRAINING, a change to it would reuse stale runs."""
    imported = _modules_imported_by(
        "import tempfile\n"
        "from cvae_lib.config import ModelConfig, TrainConfig\n"
        "from cvae_lib.data import load_digits\n"
        "from cvae_lib.store.runs import train_or_load\n"
        "from cvae_lib.baselines import MODEL_KINDS\nfrom cvae_lib.store.checkpoint import load_checkpoint\n"
        "digits = load_digits('sample').subset(256, 64)\n"
        "out = tempfile.mkdtemp()\n"
        "for cls in MODEL_KINDS.values():\n"
        "    train_or_load(digits, f'{out}/{cls.kind}', model_config=ModelConfig(base_depth=2),\n"
        "                  train_config=TrainConfig(epochs=1, batch_size=128), model_class=cls, progress='bar')\n"
        "    load_checkpoint(f'{out}/{cls.kind}')\n"
    )
    assert {"train.py", "model.py", "store/runs.py"} <= imported
    assert not imported & NOT_TRAINING


def test_run_trained_by_other_code_is_not_reused(copy_checkpoint, tiny_digits):
    directory = copy_checkpoint()
    record = json.loads((directory / "config.json").read_text())
    assert record["code"] == code_fingerprint()
    assert finished_run(directory, tiny_digits, TINY_MODEL, TINY_TRAIN)
    record["code"] = "0" * 64
    (directory / "config.json").write_text(json.dumps(record))
    assert not finished_run(directory, tiny_digits, TINY_MODEL, TINY_TRAIN)
    del record["code"]  # as written before the code was recorded
    (directory / "config.json").write_text(json.dumps(record))
    assert not finished_run(directory, tiny_digits, TINY_MODEL, TINY_TRAIN)


def test_script_form_fingerprints_the_whole_package_without_tensorflow(tmp_path):
    """scripts/build_book.sh runs the module as a file to key the chapters' execution cache:
    every module counts (plots.py included), and starting it must not load TensorFlow."""
    copy = _package_copy(tmp_path)
    script = [
        sys.executable,
        "-c",
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__');"
        " print('tensorflow' in sys.modules)",
        str(copy / "store" / "fingerprint.py"),
    ]

    def run() -> str:
        done = subprocess.run(script, capture_output=True, text=True, check=True)
        printed, tensorflow_loaded = done.stdout.split()
        assert tensorflow_loaded == "False"
        return printed

    before = run()
    assert before == code_fingerprint(copy, leave_out=())
    _edit(
        copy / "plots.py",
        '"""',
        '"""Reworded. ',
    )
    assert run() == before  # a docstring edit re-executes no chapter
    _append(copy / "plots.py", "\nUNUSED = 1\n")
    assert run() != before
