"""The four recipes the book compares, as runs on disk: the book's model and three others,
trained on the same digits with the same budget, each in its own run directory
(``<runs>/<profile>-compare-<kind>-<kl weighting>``), so every chapter gets the same run back."""

import dataclasses

from .baselines import (
    SohnCVAE,
    UnconditionalVAE,
    standard_model_config,
    standard_train_config,
)
from .config import ModelConfig, TrainConfig
from .model import ConditionalVAE
from .store.files import run_directory
from .store.runs import train_or_load

BOOK = "(a) this book"
REFERENCE_KL = "(b) reference KL weighting"
LABEL_FREE = "(c) unconditional VAE"
SOHN = "(d) label-input CVAE"


def comparison_recipes(
    settings: TrainConfig, model_config: ModelConfig = ModelConfig()
) -> dict:
    """Name -> :func:`~cvae_lib.store.runs.train_or_load` arguments of each recipe at the
    profile's ``settings``; ``None`` for the book's own model, the profile's run."""
    standard = dict(
        model_config=standard_model_config(model_config),
        train_config=standard_train_config(settings),
    )
    return {
        BOOK: None,
        REFERENCE_KL: dict(
            model_config=dataclasses.replace(model_config, kl_weighting="reference"),
            train_config=settings,
        ),
        LABEL_FREE: dict(**standard, model_class=UnconditionalVAE),
        SOHN: dict(**standard, model_class=SohnCVAE),
    }


def comparison_run(
    name: str,
    profile: str,
    digits,
    settings: TrainConfig,
    *,
    progress: str = "bar",
    root=None,
):
    """``(directory, model, history, reused)`` of recipe ``name``, trained if new."""
    recipe = comparison_recipes(settings, ModelConfig.for_data(digits))[name]
    if recipe is None:
        raise ValueError(
            "the book's own model is the profile's run: cvae_lib.book.profile_model"
        )
    kind = recipe.get("model_class", ConditionalVAE).kind
    directory = run_directory(
        f"{profile}-compare-{kind}-{recipe['model_config'].kl_weighting}", root
    )
    return (directory, *train_or_load(digits, directory, progress=progress, **recipe))
