"""Training speed: cached-feature phase 1 against recomputing the frozen base, in-memory against tf.data.

Measures, in one process and on the same images:

1. one phase 1 epoch of the head on cached pooled features, against one epoch that runs the frozen
   MobileNetV2 base over every image again (what training without the cache does each epoch);
2. input throughput in images/s of the in-memory pipeline (decoded once, then sliced) against the
   ``tf.data`` stream (``load_image`` + ``preprocess`` inside ``tf.numpy_function`` each epoch), both
   alone and feeding the frozen base.

Usage:

    nice -n 10 python benchmarks/train_speed.py --data ../shared/data/av-faces --images 512

The weights default to the ImageNet alpha 0.35 file in ``../shared/weights``; pass ``--weights`` to use
another. The ratios are measured within one run, so a busy machine slows both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO_ROOT.parent / "shared" / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "av-faces")
    parser.add_argument("--images", type=int, default=512, help="images to use, from the start of the sorted dataset (default 512)")
    parser.add_argument("--image-size", type=int, default=224, help="model input size in pixels (default 224)")
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from edgecount.datasets import load_dataset
    from edgecount.training.features import create_feature_extractor, create_head_model, features_from_images
    from edgecount.training.images import create_image_stream, create_memory_dataset, load_images
    from edgecount.training.model import build_count_model, find_base

    keras.utils.set_random_seed(0)
    samples = load_dataset(args.data).samples[: args.images]
    paths = [sample.path for sample in samples]
    counts = np.array([sample.count for sample in samples], np.float32)
    size, batch = args.image_size, args.batch_size
    model = build_count_model(args.alpha, size, args.weights, head_units=256)
    find_base(model).trainable = False
    results: dict[str, float] = {"images": len(paths), "image_size": size, "alpha": args.alpha, "batch_size": batch}

    # Input paths alone: decode once into memory, then iterate; against decoding in the stream.
    start = time.perf_counter()
    images, _ = load_images(paths, size)
    results["decode_once_images_per_s"] = len(paths) / (time.perf_counter() - start)
    memory = create_memory_dataset(images, counts, batch, shuffle_seed=0)
    stream = create_image_stream(paths, counts, size, batch, shuffle_seed=0)
    results["memory_pipeline_images_per_s"] = len(paths) / _time_iteration(memory)
    results["stream_pipeline_images_per_s"] = len(paths) / _time_iteration(stream)

    # Feature extraction once (the cost the cache pays a single time).
    extractor = create_feature_extractor(model)
    features_from_images(extractor, images[:batch], batch)  # warm-up: graph tracing
    start = time.perf_counter()
    features = features_from_images(extractor, images, 64)
    results["feature_pass_seconds"] = time.perf_counter() - start

    # Epoch times come from a callback, so fit's set-up and the first epoch's graph tracing are excluded:
    # the median of epochs 2..3 is recorded.
    head = create_head_model(model)
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.Huber())
    timer = EpochTimer()
    head.fit(features, counts, batch_size=batch, epochs=3, callbacks=[timer], verbose=0)
    results["cached_epoch_seconds"] = timer.steady_seconds()

    # Epochs that run the frozen base over the images, fed from memory and from the stream.
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.Huber())
    timer = EpochTimer()
    model.fit(memory, epochs=3, shuffle=False, callbacks=[timer], verbose=0)
    results["recompute_epoch_memory_seconds"] = timer.steady_seconds()
    timer = EpochTimer()
    model.fit(stream.map(lambda image, count, ok: (image, count)), epochs=3, shuffle=False, callbacks=[timer], verbose=0)
    results["recompute_epoch_stream_seconds"] = timer.steady_seconds()

    results["cached_speedup"] = results["recompute_epoch_memory_seconds"] / results["cached_epoch_seconds"]
    results["memory_train_images_per_s"] = len(paths) / results["recompute_epoch_memory_seconds"]
    results["stream_train_images_per_s"] = len(paths) / results["recompute_epoch_stream_seconds"]
    _print_table(results)
    print(json.dumps({key: round(value, 3) if isinstance(value, float) else value for key, value in results.items()}), file=sys.stderr)


class EpochTimer(keras.callbacks.Callback):
    """Record the wall time of every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self.started)

    def steady_seconds(self) -> float:
        """Return the median epoch time without the first epoch, which includes graph tracing."""
        return float(np.median(self.seconds[1:]))


def _time_iteration(dataset) -> float:
    start = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - start


def _print_table(results: dict[str, float]) -> None:
    n = results["images"]
    print(f"images: {n} at {results['image_size']}x{results['image_size']}, alpha {results['alpha']}, batch {results['batch_size']}")
    print("| measurement | value |")
    print("|---|---|")
    print(f"| phase 1 epoch on cached features | {results['cached_epoch_seconds']:.2f} s |")
    print(f"| epoch recomputing the frozen base (in-memory input) | {results['recompute_epoch_memory_seconds']:.2f} s |")
    print(f"| epoch recomputing the frozen base (tf.data stream) | {results['recompute_epoch_stream_seconds']:.2f} s |")
    print(f"| speed-up of the feature cache per epoch | {results['cached_speedup']:.1f}x |")
    print(f"| one-time feature pass | {results['feature_pass_seconds']:.2f} s |")
    print(f"| decode + preprocess once (threads) | {results['decode_once_images_per_s']:.0f} images/s |")
    print(f"| in-memory pipeline alone | {results['memory_pipeline_images_per_s']:.0f} images/s |")
    print(f"| tf.data stream pipeline alone | {results['stream_pipeline_images_per_s']:.0f} images/s |")
    print(f"| frozen-base epoch, in-memory input | {results['memory_train_images_per_s']:.1f} images/s |")
    print(f"| frozen-base epoch, tf.data stream input | {results['stream_train_images_per_s']:.1f} images/s |")


if __name__ == "__main__":
    main()
