"""Resolving ``--keep-float`` names against the quantization debugger's ranking of layers."""

from __future__ import annotations

import pytest

from edgecount.converters.debugger import LayerError, choose_keep_float

PREFIX = "edgecount_mobilenetv2_0.35_96_1/mobilenetv2_0.35_96_1/"
LAYERS = [
    LayerError(PREFIX + "out_relu_1/Relu6;" + PREFIX + "Conv_1_1/convolution", "CONV_2D", 100, 0.3, 1.0, 0.5),
    LayerError(PREFIX + "block_1_project_BN_1/batchnorm/add_1", "CONV_2D", 100, 0.2, 1.0, 0.5),
    LayerError(PREFIX + "block_2_project_BN_1/batchnorm/add_1", "CONV_2D", 100, 0.1, 1.0, 0.5),
]


def test_layer_short_name_drops_model_prefix() -> None:
    assert LAYERS[0].short_name == "out_relu_1/Relu6"
    assert LAYERS[1].short_name == "block_1_project_BN_1/batchnorm/add_1"
    assert LAYERS[0].rmse_per_scale == pytest.approx(0.6)


def test_choose_keep_float_auto() -> None:
    assert choose_keep_float(["auto"], LAYERS, auto_count=2) == [LAYERS[0].tensor_name, LAYERS[1].tensor_name]


def test_choose_keep_float_short_and_full_names() -> None:
    chosen = choose_keep_float(["out_relu_1/Relu6", LAYERS[2].tensor_name, "out_relu_1/Relu6"], LAYERS)

    assert chosen == [LAYERS[0].tensor_name, LAYERS[2].tensor_name]


@pytest.mark.parametrize(
    ("requested", "fragment"),
    [(["auto", "out_relu_1/Relu6"], "either 'auto' or tensor names"), (["block_9/x"], "not quantized tensors")],
)
def test_choose_keep_float_rejects(requested: list[str], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        choose_keep_float(requested, LAYERS)


def test_choose_keep_float_rejects_ambiguous() -> None:
    twins = [
        LayerError("mobilenetv2_a/x/y", "ADD", 1, 0.1, 0.1, 1.0),
        LayerError("mobilenetv2_b/x/y", "ADD", 1, 0.1, 0.1, 1.0),
    ]

    with pytest.raises(ValueError, match="matches 2 tensors"):
        choose_keep_float(["x/y"], twins)
