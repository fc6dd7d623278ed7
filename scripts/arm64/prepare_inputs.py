"""Prepare what ``check-arm64.sh`` counts on both machines: a list of real photos, a lossless video made
from real photos, and, when no run folder is given, small float32 and int8 models.

Runs on the x86 host with the development environment (OpenCV, and TensorFlow for ``--build-models``).

Usage: python prepare_inputs.py --shared DIR --out DIR [--images 12] [--video-photos 8] [--build-models]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import cv2
import numpy as np

_log = logging.getLogger("prepare_inputs")

VIDEO_SIZE = (640, 480)  # (width, height), a common webcam mode
VIDEO_FPS = 10
FRAMES_PER_PHOTO = 3
MODEL_ALPHA = 0.35
MODEL_SIZE = 96
CALIBRATION_PHOTOS = 16


def select_photos(labels_csv: Path, count: int) -> list[tuple[str, int]]:
    """Pick ``count`` photos spread evenly over the range of face counts, so crowded photos are included."""
    with open(labels_csv, newline="") as handle:
        rows = sorted(((row["image"], int(row["count"])) for row in csv.DictReader(handle)), key=lambda r: (r[1], r[0]))
    if not rows:
        raise SystemExit(f"{labels_csv} has no rows")
    positions = np.linspace(0, len(rows) - 1, min(count, len(rows))).round().astype(int)
    return [rows[int(position)] for position in dict.fromkeys(positions)]


def write_video(path: Path, photos: list[Path]) -> int:
    """Write the photos as an FFV1 (lossless) AVI, so both machines decode identical frames.

    Returns:
        The number of frames written.
    """
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), VIDEO_FPS, VIDEO_SIZE)
    if not writer.isOpened():
        raise SystemExit(f"OpenCV {cv2.__version__} cannot write FFV1 video to {path}")
    frames = 0
    for photo in photos:
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot decode {photo}")
        frame = cv2.resize(image, VIDEO_SIZE, interpolation=cv2.INTER_AREA)
        for _ in range(FRAMES_PER_PHOTO):
            writer.write(frame)
            frames += 1
    writer.release()
    return frames


def build_models(out_dir: Path, shared: Path, calibration: list[Path]) -> None:
    """Build an untrained alpha 0.35 counting model and convert it to float32 and int8 with metadata.

    The head is random, so the counts are meaningless, but every interpreter code path that a trained
    model takes is the same, which is what the cross-machine comparison needs.
    """
    from edgecount.converters import QuantMode, convert_keras_model, embed_metadata, representative_samples
    from edgecount.runtime import load_image
    from edgecount.training.model import build_count_model, weights_file_name

    weights = shared / "weights" / weights_file_name(MODEL_ALPHA, 224)
    model = build_count_model(MODEL_ALPHA, MODEL_SIZE, weights if weights.is_file() else None)
    dataset = representative_samples([load_image(path) for path in calibration], (MODEL_SIZE, MODEL_SIZE))
    for mode in (QuantMode.FLOAT32, QuantMode.INT8):
        data = convert_keras_model(model, mode, dataset if mode is QuantMode.INT8 else None)
        metadata = {"quantization": mode.value, "alpha": MODEL_ALPHA, "input_size": [MODEL_SIZE, MODEL_SIZE], "trained": False}
        (out_dir / mode.file_name).write_bytes(embed_metadata(data, metadata))
        _log.info("wrote %s", out_dir / mode.file_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, required=True, help="folder with data/av-faces and weights")
    parser.add_argument("--out", type=Path, required=True, help="work folder: writes images.txt, video.avi, models/")
    parser.add_argument("--images", type=int, default=12, help="photos to count (default 12)")
    parser.add_argument("--video-photos", type=int, default=8, help="photos in the video (default 8)")
    parser.add_argument("--build-models", action="store_true", help="build small models into OUT/models")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    faces = args.shared / "data" / "av-faces"
    photos = select_photos(faces / "labels.csv", args.images)
    (args.out / "images.txt").write_text("".join(f"{name}\n" for name, _ in photos))
    video_photos = [faces / "images" / name for name, _ in select_photos(faces / "labels.csv", args.video_photos)]
    frames = write_video(args.out / "video.avi", video_photos)
    (args.out / "inputs.json").write_text(
        json.dumps({"photos": photos, "video_frames": frames, "video_photos": [p.name for p in video_photos]}, indent=2)
    )
    _log.info("%d photos, video of %d frames from %d photos", len(photos), frames, len(video_photos))

    if args.build_models:
        (args.out / "models").mkdir(exist_ok=True)
        calibration = [faces / "images" / name for name, _ in select_photos(faces / "labels.csv", CALIBRATION_PHOTOS)]
        build_models(args.out / "models", args.shared, calibration)


if __name__ == "__main__":
    main()
