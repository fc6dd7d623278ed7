"""Settings of one training run, validated before any image is read."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgecount.training.distribute import STRATEGIES
from edgecount.training.model import ALPHAS, TARGETS
from edgecount.runtime.tiles import QUADRANTS
from edgecount.training.mosaic import DEFAULT_MOSAIC, MAX_MOSAIC
from edgecount.training.tail import MAX_TAIL_LAYERS, MIN_TAIL_LAYERS
from edgecount.training.weighting import COUNT_WEIGHTINGS

LOSSES = ("huber", "mse")
# Inputs of phase 2: cached maps of the frozen front of the base, or decoded images.
FINE_TUNE_INPUTS = ("maps", "images")


@dataclass
class TrainConfig:
    """Settings of ``edgecount train``; the defaults are those of the command.

    The defaults come from runs on 2,800 labelled group photos (1 to 29 faces, mean 4.2) with alpha
    0.35 at 224x224 on a shared 2-core x86 CPU. There a 256-unit head with dropout 0.5 and MSE loss
    reached a validation RMSE of about 1.63 (a linear head about 1.74, always guessing the mean count
    2.41). At learning rate 0.001, early stopping ended phase 1 after 15 to 40 epochs. The whole run
    took about 6 minutes.

    The loss, the target and the input size were then chosen by mean RMSE in 5-fold cross-validation on
    the same photos (``edgecount train --folds 5``, phase 1 only; every run is listed in
    ``docs/training.md``). At alpha 0.35 and 224x224, MSE on the plain count reached 1.652 +- 0.118.
    Huber loss and square-root or log targets did worse (1.676 to 1.796) because they undercount
    crowded photos even more. Larger inputs lowered the mean RMSE to 1.483 +- 0.068 at 320x320 and
    1.408 +- 0.043 at 448x448, with the int8 model within 1% of the float one at both sizes. So the
    default input is 448 pixels, which costs about four times the compute per image of 224.

    Phase 2 over images (the last 12 layers for 2 epochs) lowered the mean RMSE by less than 0.015
    at 224 and 320 pixels, for 3 to 7 times the run time. On cached maps an epoch is cheap, so the
    default fine-tunes the last four blocks (39 layers) for up to 15 epochs. At 448 pixels that
    lowered the 5-fold mean RMSE from 1.408 to 1.286 +- 0.063 (``edgecount train --folds 5``).

    Attributes:
        data_dir: the dataset folder (see ``edgecount.datasets.load_dataset``).
        out_dir: the run folder to write.
        alpha: MobileNetV2 width multiplier, one of 0.35, 0.5, 0.75, 1.0.
        image_size: square input size in pixels.
        weights: ``imagenet``, ``none`` or the path of a no-top ``.h5`` file.
        validation_split: share of images held out for validation.
        seed: seed for the split, initial weights, shuffling and dropout.
        batch_size: images (or feature vectors) per replica and step.
        epochs: maximum phase 1 epochs (head on cached features).
        learning_rate: phase 1 Adam learning rate for one replica.
        patience: epochs without a lower validation loss before a phase stops.
        fine_tune_layers: trailing base layers unfrozen in phase 2; 0 skips phase 2.
        fine_tune_epochs: maximum phase 2 epochs; 0 skips phase 2.
        fine_tune_learning_rate: phase 2 Adam learning rate for one replica.
        fine_tune_on: ``maps`` trains the unfrozen tail on cached maps of the frozen front, from the
            block boundary before the first unfrozen layer (see ``edgecount.training.tail``), with flips
            as the only augmentation. ``images`` trains over decoded, augmented images, and the streamed
            input path always does so.
        head_units: width of the hidden ReLU layer of the head; 0 for none.
        dropout: dropout rate before the output unit.
        loss: ``mse`` (early stopping then watches the validation MSE, the square of the RMSE that runs
            are judged by) or ``huber`` (delta 1 face, less pull from the rare crowded photo).
        target: what the head fits: ``count``, ``sqrt`` (square root of the count) or ``log``
            (``log(1 + count)``). The model ends in the inverse transform, so it always outputs the count.
        augment: in phase 1, train on the features of each image or of its mirror image at random (the
            mirrored features cost a second feature pass); in phase 2, augment images with flips, colour
            and brightness jitter, and (when the dataset has boxes) crops recounted from the boxes; see
            ``edgecount.training.augment``.
        stream: True streams images through ``tf.data``, False keeps them in memory, None chooses by size.
        strategy: ``default``, ``mirrored`` or ``multi-worker``.
        strict: fail on the first bad row or image instead of skipping it.
        force: replace an existing run folder.
        tensorboard: also write TensorBoard logs into ``logs/`` of the run folder.
        verbose: Keras ``fit`` verbosity (0 silent, 1 progress bar, 2 one line per epoch).
        count_weighting: ``none``, or ``sqrt-inverse`` to weight each training image by 1 over the
            square root of the smoothed frequency of its count, so rare crowded photos pull harder on the
            fit (see ``edgecount.training.weighting``). Validation losses stay unweighted. In 5-fold
            cross-validation at 448 pixels, sqrt-inverse raised the mean RMSE from 1.286 to 1.483 and
            moved the bias on photos with 15 or more faces only from -4.6 to -4.4, so the default is ``none``.
        features_dir: the feature cache folder; None (default) for ``features/`` inside the run folder.
            Runs with the same images, base, weights and input size can share one.
        mosaic: mosaics of four training photos at half size, with the sum of their counts, added to
            phase 2 as a share of the training photos (0.5 adds one mosaic per two photos; 0 turns them
            off). On maps they are a pool drawn once, whose maps cost one front pass per mosaic. See
            ``edgecount.training.mosaic``.
        quadrants: quadrant crops per training photo added to phase 2 on maps, 0 to 4 (0 turns them
            off). Each is a quarter of the photo at the input size, with its count recounted from the face
            boxes, so the dataset needs boxes. See ``edgecount.training.quadrant_pool``.
    """

    data_dir: Path
    out_dir: Path
    alpha: float = 0.35
    image_size: int = 448
    weights: str = "imagenet"
    validation_split: float = 0.2
    seed: int = 0
    batch_size: int = 32
    epochs: int = 100
    learning_rate: float = 1e-3
    patience: int = 8
    fine_tune_layers: int = 39
    fine_tune_epochs: int = 15
    fine_tune_learning_rate: float = 1e-4
    head_units: int = 256
    dropout: float = 0.5
    loss: str = "mse"
    target: str = "count"
    augment: bool = True
    stream: bool | None = None
    strategy: str = "default"
    strict: bool = False
    force: bool = False
    tensorboard: bool = False
    verbose: int = 2
    features_dir: Path | None = None
    fine_tune_on: str = "maps"
    count_weighting: str = "none"
    mosaic: float = DEFAULT_MOSAIC
    quadrants: int = 0

    def __post_init__(self) -> None:
        # Absolute, normalised paths, so the saved settings resume from any folder and runs started from
        # different folders share one feature cache (its key contains the image paths).
        self.data_dir, self.out_dir = _absolute(self.data_dir), _absolute(self.out_dir)
        self.features_dir = None if self.features_dir is None else _absolute(self.features_dir)
        keyword = "none" if self.weights is None else str(self.weights).lower()
        self.weights = keyword if keyword in ("imagenet", "none") else str(_absolute(self.weights))

    def validate(self) -> None:
        """Check every value and raise ``ValueError`` naming the option, the value and what is allowed."""
        if self.alpha not in ALPHAS:
            raise ValueError(f"--alpha must be one of {', '.join(map(str, ALPHAS))}, got {self.alpha}")
        if self.image_size < 32:
            raise ValueError(f"--image-size must be at least 32 pixels, got {self.image_size}")
        if not 0.0 < self.validation_split < 1.0:
            raise ValueError(f"--validation-split must be between 0 and 1 (exclusive), got {self.validation_split}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.target not in TARGETS:
            raise ValueError(f"--target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.fine_tune_on not in FINE_TUNE_INPUTS:
            raise ValueError(f"--fine-tune-on must be one of {', '.join(FINE_TUNE_INPUTS)}, got {self.fine_tune_on!r}")
        if self.fine_tune_on == "maps" and self.fine_tune_layers > MAX_TAIL_LAYERS:
            raise ValueError(
                f"--fine-tune-layers {self.fine_tune_layers} reaches the first block of MobileNetV2, whose input is the image; "
                f"pass at most --fine-tune-layers {MAX_TAIL_LAYERS} or --fine-tune-on images"
            )
        if not 0.0 <= self.mosaic <= MAX_MOSAIC:
            raise ValueError(f"--mosaic must be between 0 (no mosaics) and {MAX_MOSAIC:g} mosaics per training photo, got {self.mosaic:g}")
        if not 0 <= self.quadrants <= QUADRANTS:
            raise ValueError(f"--quadrants must be between 0 (none) and {QUADRANTS} quadrant crops per training photo, got {self.quadrants}")
        if self.count_weighting not in COUNT_WEIGHTINGS:
            raise ValueError(f"--count-weighting must be one of {', '.join(COUNT_WEIGHTINGS)}, got {self.count_weighting!r}")
        if 0 < self.fine_tune_layers < MIN_TAIL_LAYERS and self.fine_tune_epochs > 0:
            unfrozen = "out_relu" if self.fine_tune_layers == 1 else "out_relu and Conv_1_bn (batch normalisation stays frozen)"
            raise ValueError(
                f"--fine-tune-layers {self.fine_tune_layers} unfreezes only {unfrozen}, so no base weight would train; "
                f"pass at least --fine-tune-layers {MIN_TAIL_LAYERS} (Conv_1), or 0 to skip phase 2"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("patience", "fine_tune_layers", "fine_tune_epochs", "head_units"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        for name in ("learning_rate", "fine_tune_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ValueError("--tensorboard needs the tensorboard package, which is not installed; install it with: pip install tensorboard")

    @property
    def fine_tunes(self) -> bool:
        """Whether phase 2 runs."""
        return self.fine_tune_layers > 0 and self.fine_tune_epochs > 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild settings saved by ``as_dict``; keys this version does not know raise ``ValueError``."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown training settings {', '.join(sorted(unknown))}; they were saved by another edgecount version")
        # Settings saved before phase 2 could train on maps describe a run that fine-tunes over images.
        # Settings saved before --count-weighting existed describe an unweighted run, and those saved
        # before --mosaic a run without mosaics, and those saved before --quadrants a run without quadrants.
        return cls(**{"fine_tune_on": "images", "count_weighting": "none", "mosaic": 0.0, "quadrants": 0, **values})

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-ready values."""
        values = asdict(self)
        values["data_dir"], values["out_dir"] = str(self.data_dir), str(self.out_dir)
        values["features_dir"] = None if self.features_dir is None else str(self.features_dir)
        return values


def _absolute(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` made absolute against the working directory, with ``..`` and ``.`` removed."""
    return Path(os.path.abspath(path))
