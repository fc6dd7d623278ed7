"""Count faces in a folder of photos with the TensorFlow-free runtime, and compare with known counts.

Usage:
    python examples/count_images.py runs/av/model_int8.tflite ../shared/data/av-faces

The folder contains ``labels.csv`` (``image,count``) and ``images/``; the script prints each prediction
and the RMSE over the folder. It needs only the base install (``pip install edgecount``).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from edgecount.runtime import CountModel, EdgecountError, load_image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a .tflite model written by 'edgecount convert'")
    parser.add_argument("folder", type=Path, help="a folder with labels.csv and images/")
    parser.add_argument("--limit", type=int, default=200, help="count at most this many images (default 200)")
    args = parser.parse_args()

    model = CountModel(args.model)
    print(f"model: {args.model} ({model.quantization}, input {model.input_size}, backend {model.backend.name})")

    with open(args.folder / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[: args.limit]

    squared_errors = []
    for row in rows:
        path = args.folder / "images" / row["image"]
        try:
            predicted = model.predict(load_image(path))
        except EdgecountError as error:
            print(f"{path}: skipped: {error}", file=sys.stderr)
            continue
        true_count = float(row["count"])
        squared_errors.append((predicted - true_count) ** 2)
        print(f"{row['image']}: count {predicted:.2f}, true {true_count:g}")

    if not squared_errors:
        print("no image could be counted", file=sys.stderr)
        return 1
    print(f"RMSE over {len(squared_errors)} images: {math.sqrt(sum(squared_errors) / len(squared_errors)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
