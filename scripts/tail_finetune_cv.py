"""Cross-validate fine-tuning the last MobileNetV2 blocks on cached feature maps (the experiment behind phase 2's default).

Before this experiment, ``edgecount train`` fine-tuned over decoded images, which at 448 pixels costs
most of an hour per 5-fold run on a 2-core CPU, so its phase 2 was short (2 epochs of the last 12
layers). This script tested a cheaper schedule, which ``edgecount train --fine-tune-on maps`` (the
default) now runs. The base up to ``block_12_add`` stays frozen, and its output maps (plain and
mirrored, float16 here) are computed once. Blocks 13 to 16, ``Conv_1`` and the head then train on those
maps for up to ``--epochs`` epochs, after a warm-up of the head alone on the pooled features. Batch
normalisation stays in inference mode. Folds and inner splits follow ``edgecount train --folds``, but
early stopping here has its own patience, and the fine-tuned weights are kept even where they raise the
inner validation loss:

    python scripts/tail_finetune_cv.py --data DIR --weights WEIGHTS.h5 --cache MAPS_DIR [--image-size 448]

It prints each fold's held-out RMSE after the warm-up and after fine-tuning, then a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

CUT_LAYER = "block_12_add"
FIRST_TAIL_LAYER = "block_13_expand"


def compute_maps(paths: list[Path], alpha: float, image_size: int, weights: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``block_12_add`` maps of every image and of its mirror image, cached as float16 ``.npy`` files."""
    plain_file, mirrored_file = cache / f"maps-{alpha}-{image_size}.npy", cache / f"maps-{alpha}-{image_size}-mirrored.npy"
    if plain_file.is_file() and mirrored_file.is_file():
        return np.load(plain_file), np.load(mirrored_file)
    import keras

    from edgecount.training.images import load_preprocessed

    base = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), alpha=alpha, include_top=False, weights=weights)
    inputs = keras.Input((image_size, image_size, 3))
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    front = keras.Model(inputs, keras.Model(base.input, base.get_layer(CUT_LAYER).output)(scaled, training=False))
    plain = np.zeros((len(paths), *front.output.shape[1:]), np.float16)
    mirrored = np.zeros_like(plain)
    for start in range(0, len(paths), 32):
        batch = np.stack([load_preprocessed(path, image_size) for path in paths[start : start + 32]]).astype(np.float32)
        plain[start : start + 32] = np.asarray(front(batch, training=False))
        mirrored[start : start + 32] = np.asarray(front(batch[:, :, ::-1], training=False))
    cache.mkdir(parents=True, exist_ok=True)
    np.save(plain_file, plain)
    np.save(mirrored_file, mirrored)
    return plain, mirrored


def build_tail_model(alpha: float, image_size: int, weights: str, map_shape: tuple[int, ...]) -> tuple:
    """Build ``(tail, head, full)``: blocks 13 to 16 with ``Conv_1``, the default head, and both joined."""
    import keras

    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), alpha=alpha, include_top=False, weights=weights)
    tail = keras.Model(base.get_layer(FIRST_TAIL_LAYER).input, base.output)
    head_input = keras.Input((int(base.output.shape[-1]),))
    hidden = keras.layers.Dense(256, activation="relu")(head_input)
    head = keras.Model(head_input, keras.layers.Dense(1)(keras.layers.Dropout(0.5)(hidden)))
    maps = keras.Input(map_shape)
    full = keras.Model(maps, head(keras.layers.GlobalAveragePooling2D()(tail(maps, training=False))))
    return tail, head, full


def predict(model, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Run ``model`` over float16 inputs in batches and return one float per row."""
    rows = [np.asarray(model(inputs[start : start + batch_size].astype(np.float32), training=False)) for start in range(0, len(inputs), batch_size)]
    return np.concatenate(rows).reshape(len(inputs), -1)


def fit_early_stopping(model, plain, mirrored, counts, train_rows, validation_rows, epochs, patience, rng, batch_size=32) -> float:
    """Train ``model`` on the plain or the mirrored input of each image, chosen at random every epoch.

    The best epoch's weights are restored at the end.

    Returns:
        The best validation RMSE.
    """
    best, best_weights, waited = np.inf, model.get_weights(), 0
    for _ in range(epochs):
        order = train_rows[rng.permutation(len(train_rows))]
        flips = rng.random(len(order)) < 0.5
        for start in range(0, len(order), batch_size):
            rows, flipped = order[start : start + batch_size], flips[start : start + batch_size]
            batch = plain[rows].astype(np.float32)
            batch[flipped] = mirrored[rows[flipped]].astype(np.float32)
            model.train_on_batch(batch, counts[rows][:, None])
        loss = float(np.mean((predict(model, plain[validation_rows]).ravel() - counts[validation_rows]) ** 2))
        if loss < best:
            best, best_weights, waited = loss, model.get_weights(), 0
        else:
            waited += 1
            if waited >= patience:
                break
    model.set_weights(best_weights)
    return float(np.sqrt(best))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset folder, as for edgecount train")
    parser.add_argument("--weights", required=True, help="no-top MobileNetV2 .h5 file of this alpha")
    parser.add_argument("--cache", type=Path, required=True, help="folder for the cached block_12_add maps")
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="Adam learning rate of the fine-tuning")
    parser.add_argument("--epochs", type=int, default=15, help="maximum fine-tuning epochs")
    parser.add_argument("--patience", type=int, default=3, help="fine-tuning epochs without a lower validation loss before stopping")
    args = parser.parse_args()

    import keras

    from edgecount.datasets import load_dataset, split_samples
    from edgecount.training.crossval import assign_folds, bucket_metrics

    started = time.perf_counter()
    samples = load_dataset(args.data).samples
    counts = np.array([sample.count for sample in samples], np.float32)
    plain, mirrored = compute_maps([sample.path for sample in samples], args.alpha, args.image_size, args.weights, args.cache)
    folds = assign_folds(counts, args.folds, 0)
    row_of = {sample.path: index for index, sample in enumerate(samples)}
    warm_up, fine_tuned = np.zeros(len(samples)), np.zeros(len(samples))
    pooled = None
    for fold in range(args.folds):
        held_out = np.flatnonzero(folds == fold)
        inner_train, inner_validation = split_samples([samples[row] for row in np.flatnonzero(folds != fold)], 0.2, 0)
        train_rows = np.array([row_of[sample.path] for sample in inner_train])
        validation_rows = np.array([row_of[sample.path] for sample in inner_validation])
        tail, head, full = build_tail_model(args.alpha, args.image_size, args.weights, plain.shape[1:])
        if pooled is None:  # the frozen tail gives the same pooled features in every fold
            pooling = keras.Sequential([tail, keras.layers.GlobalAveragePooling2D()])
            pooled = (predict(pooling, plain), predict(pooling, mirrored))
        rng = np.random.default_rng([0, 1, fold])

        # Warm-up: the head alone on pooled features, as phase 1 of edgecount train.
        head.compile(keras.optimizers.Adam(1e-3), "mse")
        fit_early_stopping(head, *pooled, counts, train_rows, validation_rows, 100, 8, rng)
        warm_up[held_out] = np.maximum(predict(head, pooled[0][held_out]).ravel(), 0)

        # Fine-tuning: the tail's convolutions and the head; batch normalisation stays frozen.
        for layer in tail.layers:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        full.compile(keras.optimizers.Adam(args.learning_rate), "mse")
        fit_early_stopping(full, plain, mirrored, counts, train_rows, validation_rows, args.epochs, args.patience, rng)
        fine_tuned[held_out] = np.maximum(predict(full, plain[held_out]).ravel(), 0)
        rmse = [float(np.sqrt(np.mean((values[held_out] - counts[held_out]) ** 2))) for values in (warm_up, fine_tuned)]
        print(f"fold {fold + 1}: RMSE {rmse[0]:.3f} after the warm-up, {rmse[1]:.3f} after fine-tuning ({time.perf_counter() - started:.0f} s)", flush=True)
        keras.backend.clear_session()

    summary = {}
    for name, values in (("warm_up", warm_up), ("fine_tuned", fine_tuned)):
        fold_rmse = [float(np.sqrt(np.mean((values[folds == fold] - counts[folds == fold]) ** 2))) for fold in range(args.folds)]
        summary[name] = {"rmse_mean": float(np.mean(fold_rmse)), "rmse_std": float(np.std(fold_rmse)), "buckets": bucket_metrics(values, counts)}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
