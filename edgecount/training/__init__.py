"""Training the counting model: MobileNetV2 builder, cached base features, the two phases and the run folder.

These modules import TensorFlow, so only ``edgecount train`` (inside its command body) and the
benchmarks import them.
"""
