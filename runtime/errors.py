"""Exceptions that the command line turns into one ``error: ...`` line instead of a traceback."""


class EdgecountError(Exception):
    """Base class for errors caused by user input, files or devices rather than by a bug."""


class ImageDecodeError(EdgecountError, ValueError):
    """An image file is missing, empty, too large or not decodable."""


class ModelError(EdgecountError, ValueError):
    """A model file is missing, is not a TFLite flatbuffer, or does not take one image and return one count."""


class BackendError(EdgecountError, ImportError):
    """No usable TFLite interpreter backend is installed, or the chosen one fails to import."""


class SourceError(EdgecountError, RuntimeError):
    """A camera, video file or stream cannot be opened or stopped delivering frames."""
