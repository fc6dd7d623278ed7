"""The TensorFlow-free runtime: decode images, preprocess them and count faces with a TFLite model.

Everything in this package needs only NumPy, OpenCV and a TFLite interpreter (``ai-edge-litert``, or
``tflite-runtime``), so it runs on a Raspberry Pi without TensorFlow.
"""

from .backends import BACKENDS, Backend, load_backend
from .errors import BackendError, EdgecountError, ImageDecodeError, ModelError, SourceError
from .images import IMAGE_SUFFIXES, collect_image_paths, decode_image, is_image_file, load_image, to_bgr8
from .metadata import read_edgecount_metadata
from .model import CountModel, TensorSpec, dequantize, quantize
from .preprocess import preprocess
from .sources import CameraSource, FrameSource, ImageSource, PiCameraSource, SourceNotFoundError, StreamSource, VideoSource, open_source

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "CameraSource",
    "CountModel",
    "EdgecountError",
    "FrameSource",
    "IMAGE_SUFFIXES",
    "ImageDecodeError",
    "ImageSource",
    "ModelError",
    "PiCameraSource",
    "SourceError",
    "SourceNotFoundError",
    "StreamSource",
    "TensorSpec",
    "collect_image_paths",
    "decode_image",
    "dequantize",
    "is_image_file",
    "load_backend",
    "load_image",
    "open_source",
    "preprocess",
    "quantize",
    "read_edgecount_metadata",
    "to_bgr8",
    "VideoSource",
]
