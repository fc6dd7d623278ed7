"""The quantization modes that ``edgecount convert`` writes."""

from __future__ import annotations

from enum import Enum


class QuantMode(str, Enum):
    """How weights and activations are stored in a converted model.

    - ``float32``: no quantization; the reference for accuracy.
    - ``float16``: weights stored as float16 (half the size), computed in float32 on CPUs.
    - ``dynamic``: dynamic-range quantization; int8 weights, float activations, no calibration.
    - ``int8``: full-integer quantization calibrated on a representative dataset; uint8 image input of
      raw pixels, int8 computation, float32 count output.
    """

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    DYNAMIC = "dynamic"
    INT8 = "int8"

    @property
    def file_name(self) -> str:
        """The model's file name inside a run folder, ``model_<mode>.tflite``."""
        return f"model_{self.value}.tflite"

    @classmethod
    def parse(cls, value: str) -> list[QuantMode]:
        """Parse a mode name or ``all`` into the list of modes, in the order above.

        Raises:
            ValueError: for an unknown name, listing the valid ones.
        """
        if value == "all":
            return list(cls)
        try:
            return [cls(value)]
        except ValueError:
            valid = ", ".join([mode.value for mode in cls] + ["all"])
            raise ValueError(f"unknown quantization mode {value!r}; choose one of: {valid}") from None
