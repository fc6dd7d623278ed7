"""Converting trained Keras counting models to TFLite: float32, float16, dynamic-range and int8.

Needs TensorFlow (``pip install 'edgecount[train]'``); imported lazily by the ``convert`` command.
"""

from edgecount.converters.embed import embed_metadata
from edgecount.converters.quant_mode import QuantMode
from edgecount.converters.representative import (
    CalibrationError,
    check_calibration_sample,
    check_channel_order,
    load_calibration_frames,
    representative_samples,
    select_calibration_images,
    validate_representative_dataset,
)
from edgecount.converters.tflite import ConversionError, ModelExistsError, convert_keras_model, write_model_file

__all__ = [
    "CalibrationError",
    "ConversionError",
    "ModelExistsError",
    "QuantMode",
    "check_calibration_sample",
    "check_channel_order",
    "convert_keras_model",
    "embed_metadata",
    "load_calibration_frames",
    "representative_samples",
    "select_calibration_images",
    "validate_representative_dataset",
    "write_model_file",
]
