"""Measure the highest version of each builtin op that a TFLite interpreter registers.

This produced ``TFLITE_RUNTIME_2_14_OP_VERSIONS`` in ``runtime/backends.py``. It runs in two steps,
because the models are written with TensorFlow and loaded with the interpreter under test, which
usually lives in another venv (tflite-runtime 2.14 needs NumPy 1.x):

    python scripts/measure_op_versions.py make DIR          # with TensorFlow: writes DIR/<code>_<version>.tflite
    python scripts/measure_op_versions.py measure DIR       # with tflite_runtime (or --module ai_edge_litert.interpreter)

Each model is a one-layer float model plus one unused operator code naming a builtin op at a version.
The interpreter resolves every operator code when it loads a model, so loading fails with "Didn't find
op for builtin opcode" exactly when it lacks that version. ``measure`` prints the table as Python.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
from pathlib import Path

MAX_VERSION = 20
NAMES_FILE = "names.json"


def make_models(folder: Path) -> None:
    """Write one model per (builtin code, version) pair, and the code-to-name table, into ``folder``."""
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    inputs = tf.keras.Input((4,))
    data = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inputs, tf.keras.layers.Dense(1)(inputs))).convert()
    base = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}

    folder.mkdir(parents=True, exist_ok=True)
    (folder / NAMES_FILE).write_text(json.dumps(names))
    for code in names:
        for version in range(1, MAX_VERSION + 1):
            model = copy.deepcopy(base)
            operator_code = schema.OperatorCodeT()
            operator_code.builtinCode = code
            # Codes above 127 keep 127 (PLACEHOLDER_FOR_GREATER_OP_CODES) in the deprecated byte field.
            operator_code.deprecatedBuiltinCode = min(code, 127)
            operator_code.version = version
            model.operatorCodes.append(operator_code)
            (folder / f"{code}_{version}.tflite").write_bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def measure(folder: Path, module_name: str) -> dict[int, tuple[str, int]]:
    """Return builtin code to (name, highest version that loads) for every op with at least version 1."""
    interpreter_class = importlib.import_module(module_name).Interpreter
    names = {int(code): name for code, name in json.loads((folder / NAMES_FILE).read_text()).items()}
    table = {}
    for code in sorted(names):
        highest = 0
        for version in range(1, MAX_VERSION + 1):
            try:
                interpreter_class(model_path=str(folder / f"{code}_{version}.tflite"))
            except ValueError:
                continue
            highest = version
        if highest:
            table[code] = (names[code], highest)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("make", "measure"), help="make: write the models (TensorFlow); measure: load them")
    parser.add_argument("folder", type=Path, help="folder for the models")
    parser.add_argument("--module", default="tflite_runtime.interpreter", help="module with the Interpreter class to measure")
    args = parser.parse_args()

    if args.step == "make":
        make_models(args.folder)
        return
    table = measure(args.folder, args.module)
    print("{")
    for code, (name, version) in table.items():
        print(f"    {code}: ({name!r}, {version}),")
    print("}")


if __name__ == "__main__":
    main()
