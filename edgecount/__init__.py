"""edgecount: train a face-counting MobileNetV2, convert it to TFLite and count faces on small boards.

Importing this package is cheap: TensorFlow is imported only by the training, conversion and report
modules that need it, so ``edgecount.runtime`` works on a board without TensorFlow.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgecount")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
