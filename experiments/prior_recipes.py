"""Train the prior recipes the comparison chapter tabulates, and measure each run.

    .venv/bin/python experiments/prior_recipes.py learned frozen --seeds 0 1 2 --epochs 30
    .venv/bin/python experiments/prior_recipes.py r10-class-20 --seeds 0 1 2 --epochs 20 --batch-size 128
    .venv/bin/python experiments/prior_recipes.py --summary   # the table, from the saved results

Each recipe is the book's quick profile (the 4,000 offline training digits, the
library's defaults) with a few training settings changed (:data:`RECIPES`). For every
(recipe, seed) it writes ``results/prior-recipes/<recipe>-seed<k>.json``: the judged
conditional accuracy per class, the class means at the start and the end, how far each
moved, the closest pair, the test negative ELBO and the importance-weighted bound.
A result file that exists is not recomputed. ``--threads 1`` lets two of these share a
2-core machine.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "prior-recipes"
#: Results of the full profile's recipes, measured on a 60,000-image stand-in (``--data``).
FULL_RESULTS = RESULTS.parent / "full-recipes"

#: Training settings of each recipe, on top of TrainConfig's fields. All are stated in
#: full, so a recipe means the same whatever the library's defaults are.
_CIRCLE_10 = {
    "prior_init_radius": 10.0,
    "warmup_fraction": 1 / 3,
    "prior_learning_rate": 1e-3,
    "class_codes": "posterior",
}
RECIPES = {
    "r10-class-20": {**_CIRCLE_10, "class_weight": 20.0},  # the book's recipe
    "learned-r10": {**_CIRCLE_10, "class_weight": 0.0},  # ELBO only
    "frozen-r10": {**_CIRCLE_10, "class_weight": 0.0, "prior_learning_rate": 0.0},
    "glorot": {**_CIRCLE_10, "class_weight": 0.0, "prior_init_radius": 0.0},
    "no-warmup-r10": {**_CIRCLE_10, "class_weight": 0.0, "warmup_fraction": 0.0},
    "reference-kl": {**_CIRCLE_10, "class_weight": 20.0, "kl_weighting": "reference"},
    "r12-class-20": {**_CIRCLE_10, "class_weight": 20.0, "prior_init_radius": 12.0},
    "class-20": {**_CIRCLE_10, "class_weight": 20.0, "prior_init_radius": 8.0},
    "class-50": {**_CIRCLE_10, "class_weight": 50.0, "prior_init_radius": 8.0},
    "frozen": {
        **_CIRCLE_10,
        "class_weight": 0.0,
        "prior_learning_rate": 0.0,
        "prior_init_radius": 8.0,
    },
    "draws-20": {
        **_CIRCLE_10,
        "class_weight": 20.0,
        "class_codes": "prior",
        "prior_init_radius": 8.0,
    },
}

#: The search for the default recipe, at the quick profile's budget (20 epochs of batch
#: 128) unless a recipe sets its own: the default, then one change each.
_QUICK = {**_CIRCLE_10, "class_weight": 20.0, "epochs": 20, "batch_size": 128}
SEARCH = {
    "default": _QUICK,
    "cosine": {**_QUICK, "lr_schedule": "cosine"},
    "cosine-lr6": {**_QUICK, "lr_schedule": "cosine", "learning_rate": 6e-3},
    "kl-warmup": {**_QUICK, "warmup_shape": "kl"},
    "warmup-15": {**_QUICK, "warmup_fraction": 0.15},
    "mean-codes": {**_QUICK, "class_codes": "posterior_mean"},
    "full-cov": {**_QUICK, "prior": "full_gaussian"},
    "free-bits-4": {**_QUICK, "free_bits": 4.0},
    "batch-64": {**_QUICK, "batch_size": 64},
    "epochs-30": {**_QUICK, "epochs": 30},
    "radius-5": {**_QUICK, "prior_init_radius": 5.0},
    "class-20-to-5": {**_QUICK, "class_weight_final": 5.0},
}
#: The second round: the two changes that helped both measures, together, then with more.
_MEAN_COS6 = {**_QUICK, "class_codes": "posterior_mean", "lr_schedule": "cosine"}
_MEAN_COS6["learning_rate"] = 6e-3
SEARCH.update(
    {
        "mean-cos6": _MEAN_COS6,
        "mean-cos6-e30": {**_MEAN_COS6, "epochs": 30},
        "mean-cos6-e30-w7": {**_MEAN_COS6, "epochs": 30, "warmup_fraction": 7 / 30},
        "mean-cos10": {**_MEAN_COS6, "learning_rate": 1e-2},
        "mean-cos6-b64": {**_MEAN_COS6, "batch_size": 64},
        "mean-cos6-cw10": {**_MEAN_COS6, "class_weight": 10.0},
        "mean-cos6-cw10-e30": {**_MEAN_COS6, "class_weight": 10.0, "epochs": 30},
        # the encoder also reads the label (label_encoder.py)
        "mean-cos6-e30-label-encoder": {
            **_MEAN_COS6,
            "epochs": 30,
            "kind": "label_encoder_cvae",
        },
        # the means start in the order of the class templates (ModelConfig.for_data)
        "mean-cos6-e30-ordered": {
            **_MEAN_COS6,
            "epochs": 30,
            "start_order": "templates",
        },
        # a reference: chapter 7's label-free VAE (baselines.standard_*_config)
        "label-free-vae": {
            **_QUICK,
            "kind": "vae",
            "learning_rate": 1e-3,
            "warmup_fraction": 0.0,
            "class_weight": 0.0,
        },
    }
)
RECIPES.update({f"search-{name}": settings for name, settings in SEARCH.items()})
#: The full profile's candidates, at its budget (15 epochs of batch 256).
_FULL = {**_MEAN_COS6, "epochs": 15, "batch_size": 256}
_FULL_COS3 = {**_FULL, "learning_rate": 3e-3, "prior_learning_rate": 2e-4}
_FULL_ORDERED = {**_FULL_COS3, "class_weight_final": 100.0, "start_order": "templates"}
RECIPES.update(
    {
        "full-mean-cos6": _FULL,
        "full-mean-cos6-slow-prior": {**_FULL, "prior_learning_rate": 2e-4},
        "full-mean-cos3-slow-prior": _FULL_COS3,
        # a stronger class term, against the drift of the means after the warm-up
        "full-cos3-cw100": {**_FULL_COS3, "class_weight": 100.0},
        "full-cos3-cw20-to-100": {**_FULL_COS3, "class_weight_final": 100.0},
        "full-cos3-cw20-to-100-label-encoder": {
            **_FULL_COS3,
            "class_weight_final": 100.0,
            "kind": "label_encoder_cvae",
        },
        # the means start on the circle in the order of the class templates' angles,
        # learned at the profile's rate and faster
        "full-cos3-cw20-to-100-ordered": _FULL_ORDERED,
        "full-cos3-cw20-to-100-ordered-prior5": {
            **_FULL_ORDERED,
            "prior_learning_rate": 5e-4,
        },
        "full-cos3-cw20-to-100-ordered-prior10": {
            **_FULL_ORDERED,
            "prior_learning_rate": 1e-3,
        },
        # twice the steps: does the decoder learn to draw what it blurs at 15 epochs?
        "full-ordered-long": {**_FULL_ORDERED, "epochs": 30},
    }
)

IW_K, IW_DIGITS, PER_CLASS = 200, 500, 500


def measure(
    recipe: str, seed: int, epochs: int, batch_size: int = 256, data: str = "sample"
) -> dict:
    import dataclasses

    import full_gaussian_prior  # noqa: F401  (registers the "full_gaussian" family)
    import label_encoder  # noqa: F401  (registers the "label_encoder_cvae" kind)

    from cvae_lib.backend import tf
    from cvae_lib.baselines import MODEL_KINDS
    from cvae_lib.config import ModelConfig, TrainConfig
    from cvae_lib.data import load_digits
    from cvae_lib.evaluate import (
        conditional_accuracy,
        importance_weighted_bound,
        scored_digits,
    )
    from cvae_lib.judge import load_or_train_judge
    from cvae_lib.prior import closest_pair
    from cvae_lib.sampling import class_means, class_separation
    from cvae_lib.store.fingerprint import code_fingerprint
    from cvae_lib.train import evaluate_elbo, train

    digits = load_digits(data)
    settings = {"epochs": epochs, "batch_size": batch_size, **RECIPES[recipe]}
    kind = settings.pop("kind", "cvae")
    start_order = settings.pop("start_order", None)
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    fields = {k: v for k, v in settings.items() if k in model_fields}
    # "templates": the means start around the circle in ModelConfig.for_data's order
    model_config = (
        ModelConfig.for_data(digits, **fields)
        if start_order == "templates"
        else ModelConfig(**fields)
    )
    config = TrainConfig(
        seed=seed, **{k: v for k, v in settings.items() if k not in model_fields}
    )
    epochs = config.epochs
    model = MODEL_KINDS[kind](model_config, seed=seed)
    start_means = class_means(model).copy()
    started = time.perf_counter()
    history = train(model, digits, config, progress="lines", stream=sys.stderr)
    seconds = time.perf_counter() - started
    judge = load_or_train_judge(digits)
    judged = conditional_accuracy(model, judge, PER_CLASS)
    x, y = scored_digits(model, digits)
    elbo = evaluate_elbo(model, x, y)
    bounds = importance_weighted_bound(model, x[:IW_DIGITS], y[:IW_DIGITS], k=IW_K)
    means = class_means(model)
    codes = np.concatenate(
        [
            model.posterior(tf.constant(x[i : i + 1000]), tf.constant(y[i : i + 1000]))
            .mean()
            .numpy()
            for i in range(0, len(x), 1000)
        ]
    )
    return {
        "recipe": recipe,
        "kind": kind,
        "start_order": start_order,
        "data": digits.description,
        "seed": seed,
        "epochs": epochs,
        "settings": dataclasses.asdict(config),
        "model": dataclasses.asdict(model_config),
        "fingerprint": code_fingerprint(),
        "conditional_accuracy": judged.accuracy,
        "per_class_accuracy": judged.per_class.tolist(),
        "samples_per_class": PER_CLASS,
        "judge_test_accuracy": judge.test_accuracy,
        "closest_pair": closest_pair(class_separation(model))[2],
        "moved": np.linalg.norm(means - start_means, axis=-1).tolist(),
        "start_means": start_means.tolist(),
        "final_means": means.tolist(),
        # how far the centre of each class's test codes lies from its mean
        "code_offsets": [
            float(np.linalg.norm(codes[y == c].mean(axis=0) - means[c]))
            for c in range(len(means))
        ],
        "test_neg_elbo": float(elbo["neg_elbo"]),
        "test_kl": float(elbo["kl"]),
        "iw_bound": float(bounds.mean()),
        "iw_bound_stderr": float(bounds.std(ddof=1) / math.sqrt(len(bounds))),
        "iw_k": IW_K,
        "iw_digits": IW_DIGITS,
        "val_loss": history.series("val_loss").tolist(),
        "train_seconds": seconds,
    }


def summary() -> str:
    rows = {}
    for path in sorted(RESULTS.glob("*.json")):
        record = json.loads(path.read_text())
        rows.setdefault((record["recipe"], record["epochs"]), []).append(record)
    lines = [
        "| recipe | epochs | seeds | judged (mean ± sd) | worst seed | worst class | closest pair | "
        "mean moved | test -ELBO | IW bound |",
        "|---" * 10 + "|",
    ]
    for (recipe, epochs), records in rows.items():
        acc = np.array([r["conditional_accuracy"] for r in records])
        lines.append(
            f"| {recipe} | {epochs} | {len(records)} | {acc.mean():.3f} ± {acc.std():.3f} | {acc.min():.3f} | "
            f"{min(min(r['per_class_accuracy']) for r in records):.2f} | "
            f"{np.mean([r['closest_pair'] for r in records]):.2f} | "
            f"{np.mean([np.mean(r['moved']) for r in records]):.2f} | "
            f"{np.mean([r['test_neg_elbo'] for r in records]):.1f} | "
            f"{np.mean([r['iw_bound'] for r in records]):.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", choices=sorted(RECIPES))
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=0, help="0: TensorFlow's choice")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--data",
        default="sample",
        help="the digits (a cvae_lib data source or path); other than 'sample', results "
        "go to results/full-recipes/",
    )
    args = parser.parse_args(argv)
    if args.threads:
        from cvae_lib.backend import tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    results = RESULTS if args.data == "sample" else FULL_RESULTS
    results.mkdir(parents=True, exist_ok=True)
    for recipe in args.recipes:
        for seed in args.seeds:
            epochs = RECIPES[recipe].get("epochs", args.epochs)
            batch_size = RECIPES[recipe].get("batch_size", args.batch_size)
            batch = f"-b{batch_size}" if batch_size != 256 else ""
            path = results / f"{recipe}-e{epochs}{batch}-seed{seed}.json"
            if path.exists():
                continue
            record = measure(recipe, seed, epochs, batch_size, args.data)
            path.write_text(json.dumps(record, indent=1))
            print(
                f"{recipe} seed {seed}: judged {record['conditional_accuracy']:.3f} "
                f"(worst class {min(record['per_class_accuracy']):.2f}), closest pair "
                f"{record['closest_pair']:.2f}, -ELBO {record['test_neg_elbo']:.1f}",
                flush=True,
            )
    if args.summary or not args.recipes:
        print(summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
