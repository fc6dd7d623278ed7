"""Training inputs: decoded images in memory for small sets, a ``tf.data`` stream for large ones.

Both paths decode with ``edgecount.runtime.load_image`` and resize with ``edgecount.runtime.preprocess``,
the same two functions the runtime uses, so a model gets identical pixels in training and on the board.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.runtime import ImageDecodeError, load_image, preprocess
from edgecount.runtime.tiles import QUADRANTS, crop_quadrants
from edgecount.training.augment import AugmentSettings, augment_image, resize_square
from edgecount.training.model import transform_counts
from edgecount.training.mosaic import MOSAIC_STREAM, choose_tiles, mosaic_count, mosaic_size, tile_images

_log = logging.getLogger(__name__)

# Above this many bytes of preprocessed uint8 pixels the images are streamed instead of held in memory.
# 2 GiB is about 14,000 images at 224x224 and leaves room for TensorFlow on a machine with 8 GB.
STREAM_THRESHOLD_BYTES = 2 * 1024**3

OnStep = Callable[[str, int, int], None]


def images_nbytes(count: int, image_size: int) -> int:
    """Return the memory that ``count`` preprocessed images of ``image_size`` pixels take as uint8."""
    return count * image_size * image_size * 3


def should_stream(count: int, image_size: int, threshold: int = STREAM_THRESHOLD_BYTES) -> bool:
    """Return whether a dataset is too large for the in-memory path."""
    return images_nbytes(count, image_size) > threshold


def load_preprocessed(path: str | os.PathLike[str], image_size: int) -> np.ndarray:
    """Decode one image file and preprocess it to an ``(image_size, image_size, 3)`` uint8 RGB array."""
    return preprocess(load_image(path), (image_size, image_size))


def load_images(
    paths: list[Path],
    image_size: int,
    on_step: OnStep | None = None,
    workers: int | None = None,
    sizes: dict[Path, tuple[int, int]] | None = None,
) -> tuple[np.ndarray, dict[Path, str]]:
    """Decode and preprocess images into one uint8 array, in parallel threads.

    OpenCV releases the GIL while decoding and resizing, so threads use every core.

    Args:
        paths: the image files.
        image_size: square model input size in pixels.
        on_step: called as ``on_step("decode", done, total)`` after each image. Default None.
        workers: decoding threads. Default None uses one per CPU core.
        sizes: if given, filled with ``{path: (width, height)}`` of each decoded image before resizing,
            which face boxes in pixels are normalised by. Default None.

    Returns:
        ``(images, failures)``: an ``(N, image_size, image_size, 3)`` uint8 RGB array in ``paths`` order
        without the failed images, and a ``{path: reason}`` mapping of images that failed to decode.
    """
    images = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)

    def decode(index: int) -> str | None:
        try:
            frame = load_image(paths[index])
        except ImageDecodeError as error:
            return str(error)
        images[index] = preprocess(frame, (image_size, image_size))
        if sizes is not None:
            sizes[paths[index]] = (frame.shape[1], frame.shape[0])
        return None

    failures = _decode_in_threads(paths, decode, workers, on_step)
    if failures:
        keep = np.array([path not in failures for path in paths])
        images = images[keep]
    return images, failures


def load_quadrant_images(paths: list[Path], image_size: int, workers: int | None = None) -> tuple[np.ndarray, dict[Path, str]]:
    """Decode images and preprocess each of their 4 quadrants (``edgecount.runtime.tiles``) as a model input, in parallel threads.

    Returns:
        ``(quadrants, failures)``: an ``(N, 4, image_size, image_size, 3)`` uint8 RGB array in ``paths``
        order, with zeros for the failed images, and a ``{path: reason}`` mapping of those images.
    """
    quadrants = np.zeros((len(paths), QUADRANTS, image_size, image_size, 3), dtype=np.uint8)

    def decode(index: int) -> str | None:
        try:
            frame = load_image(paths[index])
            for quadrant, crop in enumerate(crop_quadrants(frame)):
                quadrants[index, quadrant] = preprocess(crop, (image_size, image_size))
        except (ImageDecodeError, ValueError) as error:
            return str(error)
        return None

    return quadrants, _decode_in_threads(paths, decode, workers)


def _decode_in_threads(
    paths: list[Path], decode: Callable[[int], str | None], workers: int | None, on_step: OnStep | None = None
) -> dict[Path, str]:
    """Call ``decode(index)`` for every path in parallel threads and return ``{path: error}`` for the calls that returned an error.

    OpenCV releases the GIL while decoding and resizing, so threads use every core. ``on_step`` gets
    ``("decode", done, total)`` after each path, in order.
    """
    failures: dict[Path, str] = {}
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for index, error in enumerate(pool.map(decode, range(len(paths)))):
            if error is not None:
                failures[paths[index]] = error
            if on_step is not None:
                on_step("decode", index + 1, len(paths))
    return failures


def create_image_stream(
    paths: list[Path],
    counts: np.ndarray | None,
    image_size: int,
    batch_size: int,
    shuffle_seed: int | None = None,
    flip: bool = False,
) -> Any:
    """Build a ``tf.data`` pipeline that decodes images on the fly.

    Each element is a batch ``(images, counts, ok)``: float32 pixels 0..255, float32 counts (zeros when
    ``counts`` is None) and a bool flag. The flag is False for an image that failed to decode, whose
    pixels are zeros, so one bad file never stops an epoch and callers can drop or report it.

    Args:
        paths: the image files.
        counts: the true counts in ``paths`` order, or None for inference.
        image_size: square model input size in pixels.
        batch_size: images per batch.
        shuffle_seed: shuffle the whole list every epoch with this seed; None keeps the order. Default None.
        flip: randomly mirror images left-right, which keeps the count. Default False.

    Returns:
        A ``tf.data.Dataset``.
    """
    from edgecount.tensorflow_import import import_tensorflow

    tf = import_tensorflow("streaming training images")
    labels = np.zeros(len(paths), np.float32) if counts is None else np.asarray(counts, np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(([str(path) for path in paths], labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)

    def decode(path: Any) -> tuple[np.ndarray, bool]:
        try:
            return load_preprocessed(path.decode(), image_size), True
        except ImageDecodeError as error:
            _log.warning("%s", error)
            return np.zeros((image_size, image_size, 3), np.uint8), False

    def load(path: Any, count: Any) -> tuple[Any, Any, Any]:
        image, ok = tf.numpy_function(decode, [path], [tf.uint8, tf.bool], stateful=False)
        image.set_shape((image_size, image_size, 3))
        ok.set_shape(())
        return tf.cast(image, tf.float32), count, ok

    # deterministic=True keeps the element order fixed, so a seeded run repeats exactly.
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size)
    if flip:
        dataset = dataset.map(lambda images, counts, ok: (tf.image.random_flip_left_right(images), counts, ok))
    return dataset.prefetch(tf.data.AUTOTUNE)


def create_memory_dataset(
    images: np.ndarray,
    counts: np.ndarray,
    batch_size: int,
    shuffle_seed: int | None = None,
    flip: bool = False,
) -> Any:
    """Build a ``tf.data`` pipeline over preprocessed uint8 images held in memory.

    Elements are ``(images, counts)`` batches with float32 pixels 0..255, like ``create_image_stream``.
    """
    from edgecount.tensorflow_import import import_tensorflow

    tf = import_tensorflow("training on images in memory")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.asarray(counts, np.float32)))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(lambda batch, labels: (tf.cast(batch, tf.float32), labels))
    if flip:
        dataset = dataset.map(lambda batch, labels: (tf.image.random_flip_left_right(batch), labels))
    return dataset.prefetch(tf.data.AUTOTUNE)


def create_augmented_dataset(
    load: Callable[[int], tuple[np.ndarray | None, np.ndarray | None, bool]],
    rows: np.ndarray,
    counts: np.ndarray,
    image_size: int,
    batch_size: int,
    entropy: list[int],
    settings: AugmentSettings | None,
    resize: Callable[[np.ndarray], np.ndarray],
    target: str = "count",
    weights: np.ndarray | None = None,
    mosaic: float = 0.0,
) -> Any:
    """Build one epoch of phase 2 training batches, shuffled and augmented from a seed.

    The order and every random change come from ``entropy`` and the row alone, never from TensorFlow's
    random state, so an epoch rebuilt from the same entropy (for example after ``--resume``) is the
    same batch for batch.

    Args:
        load: returns ``(image, boxes, ok)`` for a row: a uint8 image (BGR frame or preprocessed RGB,
            to match ``resize``), its face boxes normalised to 0..1 (see ``augment.normalise_boxes``) or
            None when there are none (no crop then), and False when it failed to decode.
        rows: the dataset rows of the epoch.
        counts: true counts, indexed by row.
        image_size: square model input size in pixels.
        batch_size: images per batch.
        entropy: seed of the epoch, for example ``[seed, phase, epoch]``.
        settings: the augmentation ranges, or None for none (only the shuffle).
        resize: turns a (cropped) image into the ``image_size`` square RGB uint8 model input.
        target: the training target (see ``build_count_model``), applied to each count after any
            recount. Default ``count``.
        weights: sample weights indexed by row (see ``edgecount.training.weighting``), or None (default)
            for weight 1.
        mosaic: mosaics per row in the epoch (see ``edgecount.training.mosaic``): 4 photos of ``rows``,
            each augmented and shrunk to half size, tiled 2x2, with the sum of their (recounted) counts
            and weight 1. Default 0, none.

    Returns:
        A ``tf.data.Dataset`` of ``(images, counts, weights)`` batches: float32 pixels 0..255, float32
        targets and sample weights (0 for an image that failed to decode, so it neither trains nor scores).
    """
    from edgecount.tensorflow_import import import_tensorflow

    tf = import_tensorflow("augmenting training images")
    order = np.asarray(rows)[np.random.default_rng(list(entropy)).permutation(len(rows))]
    # Mosaic k is element -(k + 1); its 4 photos are tiles[k].
    tiles = choose_tiles(np.random.default_rng([*entropy, MOSAIC_STREAM]), np.asarray(rows), mosaic_count(mosaic, len(rows)))
    if len(tiles):
        elements = np.concatenate([order, -np.arange(1, len(tiles) + 1)])
        order = elements[np.random.default_rng([*entropy, MOSAIC_STREAM, 1]).permutation(len(elements))]

    def transformed(count: float) -> np.float32:
        return np.float32(transform_counts(np.float32(count), target))

    def make_mosaic(index: int) -> tuple[np.ndarray, np.float32, np.float32]:
        half, quadrants, total, weight = mosaic_size(image_size), [], 0.0, np.float32(1.0)
        for tile, row in enumerate(tiles[index]):
            image, boxes, ok = load(int(row))
            if not ok:
                # A photo that stopped decoding leaves its tile black and the mosaic out of the loss.
                quadrants.append(np.zeros((half, half, 3), np.float32))
                weight = np.float32(0.0)
                continue
            if settings is None:
                pixels, recounted = resize(image).astype(np.float32), float(counts[row])
            else:
                rng = np.random.default_rng([*entropy, MOSAIC_STREAM, index, tile])
                pixels, recounted = augment_image(image, float(counts[row]), rng, resize, boxes, settings)
            quadrants.append(resize_square(pixels, half))
            total += recounted
        tiled = resize_square(tile_images(quadrants), image_size)
        return tiled.astype(np.float32), transformed(total), weight

    def make(row: Any) -> tuple[np.ndarray, np.float32, np.float32]:
        row = int(row)
        if row < 0:
            return make_mosaic(-row - 1)
        image, boxes, ok = load(row)
        if not ok:
            return np.zeros((image_size, image_size, 3), np.float32), transformed(counts[row]), np.float32(0.0)
        weight = np.float32(1.0 if weights is None else weights[row])
        if settings is None:
            return resize(image).astype(np.float32), transformed(counts[row]), weight
        rng = np.random.default_rng([*entropy, row])
        pixels, recounted = augment_image(image, float(counts[row]), rng, resize, boxes, settings)
        return pixels, transformed(recounted), weight

    def element(row: Any) -> tuple[Any, Any, Any]:
        image, target, weight = tf.numpy_function(make, [row], [tf.float32, tf.float32, tf.float32], stateful=False)
        image.set_shape((image_size, image_size, 3))
        target.set_shape(())
        weight.set_shape(())
        return image, target, weight

    dataset = tf.data.Dataset.from_tensor_slices(order.astype(np.int64))
    # deterministic=True keeps the element order fixed across parallel calls.
    dataset = dataset.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
