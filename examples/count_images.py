"""Count faces in a labelled folder with the TensorFlow-free runtime, and compare with the known counts.

Usage:
    python examples/count_images.py runs/av/model_int8.tflite ../shared/data/av-faces

The folder is read by the same reader as ``edgecount train --data``: ``labels.csv`` (``image,count``)
with ``images/``, the challenge download (``train.csv`` with ``image_data/``), or a box file alone.
Invalid rows are skipped with a warning on stderr. The script prints each prediction and the RMSE over
the images it counted. It needs only the base install (``pip install edgecount``).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from edgecount.datasets import load_dataset
from edgecount.runtime import CountModel, EdgecountError, load_image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a .tflite model written by 'edgecount convert'")
    parser.add_argument("folder", type=Path, help="a labelled folder, for example one with labels.csv and images/")
    parser.add_argument("--limit", type=int, default=200, help="count at most this many images (default 200)")
    args = parser.parse_args()
    if args.limit < 1:
        parser.error(f"--limit must be 1 or more, got {args.limit}")
    # The dataset reader logs each skipped row as a warning; show them on stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    try:
        model = CountModel(args.model)
        samples = load_dataset(args.folder).samples[: args.limit]
    except EdgecountError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"model: {args.model} ({model.quantization}, input {model.input_size}, backend {model.backend.name})")

    squared_errors = []
    try:
        for sample in samples:
            try:
                predicted = model.predict(load_image(sample.path))
            except EdgecountError as error:
                print(f"{sample.path}: skipped: {error}", file=sys.stderr)
                continue
            squared_errors.append((predicted - sample.count) ** 2)
            print(f"{sample.path.name}: count {predicted:.2f}, true {sample.count:g}")
    except KeyboardInterrupt:
        print(f"stopped after {len(squared_errors)} images", file=sys.stderr)

    if not squared_errors:
        print("no image could be counted", file=sys.stderr)
        return 1
    print(f"RMSE over {len(squared_errors)} images: {math.sqrt(sum(squared_errors) / len(squared_errors)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
