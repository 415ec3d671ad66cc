"""The seeds' network shapes on digits-sized data, for the training benchmarks (issue 28).

``model(name, seed)`` returns a float :class:`golden.network.Model` with He-initialised weights
and ``digits_input(name, images)`` adapts the 8×8 digits to its input.  The model zoo of issue
28's sibling (``ftaccel.app.zoo``, same interface) is used where it is installed and knows the
name; these minimal builders stand in for it until then (say so in every report: the
``source`` field).

* ``lenet5``: conv 5×5 ×6, max-pool 2, conv 5×5 ×16, max-pool 2, fc 120, 84, 10; 32×32×1
  input (the digits upsampled ×4) — Ozen 2023 §8.7, §9.4 (MNIST);
* ``mlp7``: 64 → 5×512 → 256 → 10 (2,816 hidden neurons, Ahmadilivani 2025 Table 4.10; digits' 64
  inputs);
* ``mlp3``: 64 → 3×256 → 10, the MLP of Ozen 2023 §10.4 (784-256-256-256-10 on MNIST);
* ``resnet8``: ResNet of the CIFAR form, 3×3 stem ×16, three stages of one basic block (16,
  32, 64 channels, stride 2 and a 1×1 projection at stages 2 and 3), global average pool,
  fc 10; 32×32×3 input (the digits upsampled ×4, replicated to three channels).  ResNet-18's
  shape with 1 block per stage instead of 2 and 16–64 channels instead of 64–512 (Ozen 2023 §8.7:
  ResNet-18/CIFAR-10): what the two cores here train in minutes.
"""

from __future__ import annotations

import numpy as np

from ftaccel.golden.network import (
    Add,
    AvgPool,
    Conv2D,
    Dense,
    Flatten,
    MaxPool,
    Model,
    ReLU,
)

NAMES = ("lenet5", "mlp7", "mlp3", "resnet8")


def _conv(rng, kh, kw, ci, co, name, **options):
    w = rng.normal(0, np.sqrt(2.0 / (kh * kw * ci)), (kh, kw, ci, co))
    return Conv2D(w, np.zeros(co), name=name, **options)


def _dense(rng, k, n, name, relu=True):
    return Dense(rng.normal(0, np.sqrt(2.0 / k), (k, n)), np.zeros(n), relu=relu, name=name)


def _local(name: str, seed: int) -> Model:
    rng = np.random.default_rng(seed)
    if name == "lenet5":
        layers = (_conv(rng, 5, 5, 1, 6, "conv1", relu=True), MaxPool(name="pool1"),
                  _conv(rng, 5, 5, 6, 16, "conv2", relu=True), MaxPool(name="pool2"),
                  Flatten(name="flatten"), _dense(rng, 400, 120, "fc1"),
                  _dense(rng, 120, 84, "fc2"), _dense(rng, 84, 10, "fc3", relu=False))
        return Model(layers=layers, input_shape=(32, 32, 1), classes=10, name=name)
    if name in ("mlp7", "mlp3"):
        widths = [64] + ([512] * 5 + [256] if name == "mlp7" else [256] * 3)
        layers = tuple(_dense(rng, a, b, f"fc{i + 1}") for i, (a, b) in
                       enumerate(zip(widths[:-1], widths[1:], strict=True)))
        layers += (_dense(rng, widths[-1], 10, f"fc{len(widths)}", relu=False),)
        return Model(layers=layers, input_shape=(64,), classes=10, name=name)
    if name == "resnet8":
        p1 = (1, 1, 1, 1)
        layers = (
            _conv(rng, 3, 3, 3, 16, "stem", padding=p1, relu=True),             # 0
            _conv(rng, 3, 3, 16, 16, "s1c1", padding=p1, relu=True),            # 1
            _conv(rng, 3, 3, 16, 16, "s1c2", padding=p1),                       # 2
            Add(name="s1add", inputs=(0, 2)), ReLU(name="s1relu"),              # 3, 4
            _conv(rng, 3, 3, 16, 32, "s2c1", stride=(2, 2), padding=(0, 0, 1, 1),
                  relu=True),                                                   # 5
            _conv(rng, 3, 3, 32, 32, "s2c2", padding=p1),                       # 6
            _conv(rng, 1, 1, 16, 32, "s2proj", stride=(2, 2), inputs=(4,)),     # 7
            Add(name="s2add", inputs=(6, 7)), ReLU(name="s2relu"),              # 8, 9
            _conv(rng, 3, 3, 32, 64, "s3c1", stride=(2, 2), padding=(0, 0, 1, 1),
                  relu=True),                                                   # 10
            _conv(rng, 3, 3, 64, 64, "s3c2", padding=p1),                       # 11
            _conv(rng, 1, 1, 32, 64, "s3proj", stride=(2, 2), inputs=(9,)),     # 12
            Add(name="s3add", inputs=(11, 12)), ReLU(name="s3relu"),            # 13, 14
            AvgPool(size=(8, 8), stride=(8, 8), name="gap"), Flatten(name="flatten"),
            _dense(rng, 64, 10, "fc", relu=False))
        return Model(layers=layers, input_shape=(32, 32, 3), classes=10, name=name)
    raise KeyError(name)


def model(name: str, seed: int = 0) -> tuple[Model, str]:
    """``(float model, source)``: the zoo's model where it exists, else the builder here."""
    try:
        from ftaccel.app import zoo

        return zoo.model(name, seed=seed), "ftaccel.app.zoo"
    except (ImportError, KeyError, ValueError, AttributeError):
        return _local(name, seed), "bench/seed_models.py (minimal builder)"


def digits_input(name: str, images: np.ndarray) -> np.ndarray:
    """The 8×8 digits as ``name`` takes them: ×4 nearest upsampling, channels replicated."""
    try:
        from ftaccel.app import zoo

        return zoo.digits_input(name, images)
    except (ImportError, KeyError, ValueError, AttributeError):
        pass
    x = np.asarray(images, np.float64).reshape(len(images), 8, 8)
    if name in ("mlp7", "mlp3"):
        return x.reshape(len(x), 64)
    x = x.repeat(4, axis=1).repeat(4, axis=2)[..., None]
    return np.repeat(x, 3, axis=3) if name == "resnet8" else x
