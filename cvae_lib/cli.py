"""Command line: ``python -m cvae_lib {train,sample,grid,evaluate} ...``. Every user mistake ends in
one line on stderr (``cvae_lib: error: ...``) and exit status 2; every output is written to a
temporary file and renamed into place when complete."""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from . import config, data
from .errors import CvaeError
from .evaluate import (
    DEFAULT_K,
    DEFAULT_PER_CLASS,
    evaluate_model,
    report_to_json,
    run_digits,
)
from .judge import DEFAULT_EPOCHS as JUDGE_EPOCHS
from .judge import load_or_train_judge
from .sampling import class_means, sample_images
from .store.checkpoint import load_checkpoint, read_config
from .store.files import atomic_write, atomic_write_text
from .store.runs import train_or_load

EXIT_USAGE = 2


def _number_type(convert, kind: str, valid):
    """An argparse type: ``convert(text)`` if that is ``valid``, else a one-line error naming ``kind``."""

    def number(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text.strip()}")
        return value

    return number


_positive_int = _number_type(int, "a positive integer", lambda value: value >= 1)
_positive_float = _number_type(float, "a positive number", lambda value: value > 0)
_non_negative_float = _number_type(float, "a number >= 0", lambda value: value >= 0)


def _iw_digits(text: str):
    """``all`` or a positive integer: how many test digits the importance-weighted bound covers."""
    return None if text.strip().lower() == "all" else _positive_int(text)


def _check_output(path: Path, *, directory: bool = False) -> None:
    """Fail before any long work if file ``path``, or the ``directory`` ``path``, cannot be
    written; create nothing, so a run that fails later (say, no data) leaves nothing behind."""
    if path.exists() and path.is_dir() != directory:
        raise CvaeError(
            f"{path} exists and is not a directory"
            if directory
            else f"{path} is a directory, expected a file name"
        )
    existing = path if directory else path.parent
    while directory and not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise CvaeError(f"cannot write {path}: {existing} is not a directory")
    if not existing.is_dir():
        raise CvaeError(f"cannot write {path}: directory {existing} does not exist")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CvaeError(f"cannot write {path}: permission denied")


def cmd_train(args) -> None:
    _check_output(args.out, directory=True)
    digits = data.load_digits(args.data, seed=args.seed)
    budget = {
        name: value
        for name, value in (("epochs", args.epochs), ("batch_size", args.batch_size))
        if value
    }
    train_config = config.TrainConfig.for_data(
        len(digits.x_train),
        **budget,
        learning_rate=args.learning_rate,
        prior_learning_rate=args.prior_learning_rate,
        seed=args.seed,
    )
    model_config = config.ModelConfig.for_data(
        digits,
        latent_dim=args.latent_dim,
        class_weight=args.class_weight,
        kl_weighting=args.kl_weighting,
    )
    _, history, _ = train_or_load(
        digits,
        args.out,
        model_config=model_config,
        train_config=train_config,
        progress="lines",
        announce=f"training on {digits.description} for {train_config.epochs} epochs, "
        f"batch {train_config.batch_size}",
        if_exists="replace" if args.overwrite else "refuse",
    )
    print(
        f"wrote {args.out}/ (validation negative ELBO "
        f"{history.epochs[-1]['val_loss']:.2f} nats/image)"
    )


def cmd_sample(args) -> None:
    _check_output(args.out)
    model, _ = load_checkpoint(args.dir)
    samples = sample_images(model, args.per_class, seed=args.seed)
    labels = np.repeat(np.arange(samples.shape[0]), samples.shape[1]).reshape(
        samples.shape[:2]
    )
    atomic_write(
        args.out,
        lambda f: np.savez(
            f, samples=samples, labels=labels, class_means=class_means(model)
        ),
    )
    print(f"wrote {args.out}: samples {samples.shape} (row c generated for digit c)")


def cmd_grid(args) -> None:
    from matplotlib.figure import (
        Figure,  # only here: matplotlib takes a second to import
    )

    from .plots import manifold_figure

    _check_output(args.out)
    fmt = args.out.suffix.lstrip(".").lower() or "png"
    if fmt not in Figure().canvas.get_supported_filetypes():
        raise CvaeError(f"cannot save a figure as .{fmt}: use .png, .pdf or .svg")
    model, _ = load_checkpoint(args.dir)
    fig = manifold_figure(model, args.digit, n=args.size)  # which checks the digit
    atomic_write(args.out, lambda f: fig.savefig(f, format=fmt, dpi=120))
    print(f"wrote {args.out}: {args.size}x{args.size} manifold of digit {args.digit}")


def cmd_evaluate(args) -> None:
    """Conditional accuracy, test ELBO, importance-weighted bound and separation -> JSON."""
    _check_output(args.out)
    record = read_config(args.dir)
    model, _ = load_checkpoint(args.dir)
    if not record.get("complete", True):
        print(
            f"cvae_lib: warning: {args.dir} holds an unfinished run; evaluating it as it is",
            file=sys.stderr,
            flush=True,
        )
    digits, n_test = run_digits(record, args.dir)
    judge = load_or_train_judge(digits, epochs=args.judge_epochs)
    report = evaluate_model(
        model,
        digits.subset(None, n_test),
        judge,
        k=args.k,
        iw_digits=args.iw_digits,
        per_class=args.per_class,
        seed=args.seed,
        progress="bar" if sys.stderr.isatty() else "lines",
    )
    report = {
        "checkpoint": str(args.dir),
        **report,
        "run": {
            key: record.get(key) for key in ("model", "train", "hardware", "complete")
        },
    }
    atomic_write_text(args.out, report_to_json(report))
    print(
        f"wrote {args.out}: conditional accuracy {report['conditional_accuracy']:.1%} "
        f"(judge {report['judge_test_accuracy']:.1%} on real test digits), test negative ELBO "
        f"{report['test_neg_elbo']:.2f} nats; on the first {report['iw_digits']} test digits, bound on "
        f"{report['iw_bound_of']} {report['iw_bound']:.2f} (k={report['k']}) against their negative ELBO "
        f"{report['iw_neg_elbo']:.2f}"
    )


def _command(sub, func, description: str, out: str, directory: str | None = None):
    """Subcommand ``cmd_<name>``: ``--out`` and, if ``directory`` says, a checkpoint."""
    command = sub.add_parser(func.__name__.removeprefix("cmd_"), help=description)
    if directory:
        command.add_argument("dir", type=Path, help=directory)
    command.add_argument("--out", type=Path, required=True, help=out)
    command.set_defaults(func=func)
    return command


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m cvae_lib``, one subcommand per ``cmd_*`` function."""
    parser = _Parser(prog="python -m cvae_lib", description="Conditional VAE on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True)
    checkpoint = "checkpoint directory"
    train, sample, grid, evaluate = (
        _command(sub, *command)
        for command in (
            (
                cmd_train,
                "train a model and write its checkpoint",
                f"{checkpoint}; an unfinished run of the same settings there is resumed",
            ),
            (cmd_sample, "generate digits of every class", "output .npz", checkpoint),
            (
                cmd_grid,
                "draw the 15x15 manifold around one class mean",
                "output image (.png, .pdf, .svg)",
                checkpoint,
            ),
            (
                cmd_evaluate,
                "judge generated digits and bound the test likelihood -> JSON",
                "output report (.json)",
                f"{checkpoint} (its config.json names the data)",
            ),
        )
    )
    _add_training_settings(train)
    sample.add_argument("--per-class", type=_positive_int, default=10)
    grid.add_argument("--digit", type=int, required=True)
    grid.add_argument("--size", type=_positive_int, default=15)
    evaluate.add_argument(
        "--iw-digits",
        type=_iw_digits,
        default=1000,
        help="bound the first N test digits, or 'all' (default 1000: k decodes each)",
    )
    for flag, default, what in (
        ("--k", DEFAULT_K, "importance samples per digit for the bound"),
        (
            "--per-class",
            DEFAULT_PER_CLASS,
            "generated digits per class for conditional accuracy",
        ),
        (
            "--judge-epochs",
            JUDGE_EPOCHS,
            "epochs of the judge classifier, cached per setting",
        ),
    ):
        evaluate.add_argument(
            flag,
            type=_positive_int,
            default=default,
            help=f"{what} (default {default})",
        )
    for command in (train, sample, evaluate):
        command.add_argument("--seed", type=int, default=0)
    return parser


def _add_training_settings(train) -> None:
    """``train``'s options: digits, model and training settings, ``--overwrite``."""
    defaults, model = config.TrainConfig(), config.ModelConfig()
    train.add_argument(
        "--data",
        default=None,
        metavar="{auto,keras,sample,PATH}",
        help="digits: auto (default; $CVAE_DATA), full MNIST (keras), the offline sample, or "
        "PATH: an MNIST .npz or a directory of the four IDX files, read offline",
    )
    full, small = (
        config.TrainConfig.for_data(n)
        for n in (config.FULL_DATA_SIZE, config.FULL_DATA_SIZE - 1)
    )
    for option, field in (("--epochs", "epochs"), ("--batch-size", "batch_size")):
        train.add_argument(
            option,
            type=_positive_int,
            default=None,
            help=f"default: {getattr(full, field)} on full MNIST, "
            f"{getattr(small, field)} on the offline digits",
        )
    train.add_argument(
        "--learning-rate", type=_positive_float, default=defaults.learning_rate
    )
    train.add_argument(
        "--prior-learning-rate",
        type=_non_negative_float,
        default=defaults.prior_learning_rate,
        help="the class means' learning rate after warm-up (0: frozen means)",
    )
    train.add_argument(
        "--class-weight",
        type=_non_negative_float,
        default=model.class_weight,
        help="weight of the prior's class term -log p(y|z), not part of the ELBO (0: off)",
    )
    train.add_argument(
        "--kl-weighting",
        choices=config.KL_WEIGHTINGS,
        default=model.kl_weighting,
        help="elbo (correct) or reference (KL x 1/batch, the reference recipe's mistake)",
    )
    train.add_argument("--latent-dim", type=_positive_int, default=2)
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished run, or another run, in --out instead of refusing",
    )


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr, like every other error."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"cvae_lib: error: {message} (see: {self.prog} --help)\n")


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2): return, do not exit
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        args.func(args)
    except CvaeError as err:
        print(f"cvae_lib: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        resume = (
            "; the same command resumes after the last finished epoch"
            if args.command == "train"
            else ""
        )
        print(f"cvae_lib: interrupted{resume}", file=sys.stderr)
        return 130
    return 0
