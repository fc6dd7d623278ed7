"""Phase 2 on cached maps: the frozen front of the base runs once per image, and its unfrozen tail trains on the output.

Fine-tuning the last base layers over decoded images runs the whole frozen front of MobileNetV2 in every
step, although its output never changes. Here the tail starts at a block boundary. The front's output
maps of every image and of its mirror image are computed once and cached like the phase 1 features,
and phase 2 trains the tail and the head on them. An epoch then costs a fraction of an epoch over
images, so phase 2 can run for many epochs. The only augmentation is the choice between the plain and
the mirrored maps, because colour jitter and recounted crops change the pixels before the front.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecount.training.features import head_layers
from edgecount.training.model import find_base


# The maximum tail length with one input: Keras' MobileNetV2 with average pooling has 155 layers, and its
# first block boundary, block_1_expand, is layer 9 (checked against the built model by the tests).
MAX_TAIL_LAYERS = 146
# The smallest tail with a weight that trains: the base ends in Conv_1, Conv_1_bn and out_relu, and
# batch normalisation stays frozen, so 1 or 2 layers would unfreeze nothing.
MIN_TAIL_LAYERS = 3


@dataclass
class TailMaps:
    """The cached maps that phase 2 trains on.

    Attributes:
        start: index in the base of the first tail layer, whose input the maps are.
        layer_name: name of that layer, such as ``block_13_expand``.
        maps: float32 maps of every image, in ``dataset.samples`` order.
        mirrored: the maps of every image flipped left to right, or None without augmentation.
    """

    start: int
    layer_name: str
    maps: np.ndarray
    mirrored: np.ndarray | None


def find_tail_start(base: Any, layer_count: int) -> int:
    """Return the index of the first base layer of the shortest tail that has one input and contains the last ``layer_count`` layers.

    A MobileNetV2 tail can start only at a block boundary (``block_N_expand`` or ``Conv_1``): inside a
    block, the residual connection also reads the block's input, so a cut there would need two inputs.

    Raises:
        ValueError: if ``layer_count`` reaches into the first block, which has no boundary before it.
    """
    first_unfrozen = len(base.layers) - layer_count
    starts = [index for index, layer in enumerate(base.layers) if index <= first_unfrozen and _starts_block(layer.name)]
    if not starts:
        raise ValueError(
            f"--fine-tune-layers {layer_count} reaches the first block of MobileNetV2, whose input is the image; "
            f"pass at most --fine-tune-layers {len(base.layers) - first_block_start(base)} or --fine-tune-on images"
        )
    return starts[-1]


def _starts_block(name: str) -> bool:
    return name == "Conv_1" or (name.startswith("block_") and name.endswith("_expand"))


def first_block_start(base: Any) -> int:
    """Return the index of the first base layer where a tail with one input can start (``block_1_expand``)."""
    return next(index for index, layer in enumerate(base.layers) if _starts_block(layer.name))


def create_front_extractor(model: Any, start: int) -> Any:
    """Build a Keras model from the counting model's input to the input of base layer ``start`` (shared layers)."""
    import keras

    base = find_base(model)
    front = keras.Model(base.input, base.layers[start].input, name="front")
    scaling = model.get_layer("mobilenetv2_scaling")
    inputs = keras.Input(shape=model.input.shape[1:], dtype="float32", name="image")
    return keras.Model(inputs, front(scaling(inputs), training=False), name="front_extractor")


def create_tail_fit_model(model: Any, start: int) -> Any:
    """Build the phase 2 model: from the maps at base layer ``start`` through the tail and the head, to the training target.

    It shares every layer with the counting model, so training it trains the counting model. Like the
    fit model of ``create_fit_model``, it stops before the inverse target layers.
    """
    import keras

    base = find_base(model)
    tail = keras.Model(base.layers[start].input, base.output, name="tail")
    inputs = keras.Input(shape=tail.input.shape[1:], dtype="float32", name="maps")
    outputs = tail(inputs)
    for layer in head_layers(model):
        outputs = layer(outputs)
    return keras.Model(inputs, outputs, name="tail_fit")

