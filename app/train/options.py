"""The options of a training run, validated on construction (no JAX needed).

Every bad value raises :class:`ftaccel.errors.ConfigError` naming the option as the command
line spells it without its dashes (``lr``, ``epochs``, ``drop_rate`` …), so ``rtlgen train``
and the API give the same one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ftaccel.errors import ConfigError, is_int

__all__ = ["TrainOptions", "MAX_EPOCHS", "METHOD_DATAFLOW", "FAULT_MODELS"]

#: Largest epoch count accepted (a typo such as 10000000 fails at once).
MAX_EPOCHS = 10_000
#: The dataflow each bypass-aware method models (Ozen 2023 §10.3.2: WS prunes the weights a PE
#: holds, IS its inputs, OS its outputs).
METHOD_DATAFLOW = {"dropconnect": "ws", "dropout-in": "is", "dropout-out": "os"}
#: Fault models of ``fault-aware`` training: the campaign's rate-driven ones.
FAULT_MODELS = ("bit_errors", "pe_profile")
_PROFILE_MODES = ("bitflip", "flip-to-0", "flip-to-1")


def _number(name: str, v, lo: float, hi: float, *, open_lo: bool = True, what: str = "") -> float:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and \
        (lo < v if open_lo else lo <= v) and v <= hi
    if not ok:
        lb = "(" if open_lo else "["
        raise ConfigError(name, v, what or f"a number in {lb}{lo:g}, {hi:g}]")
    return float(v)


def _count(name: str, v, lo: int, hi: int) -> int:
    if not is_int(v) or not lo <= v <= hi:
        raise ConfigError(name, v, f"an integer from {lo} to {hi:,}")
    return int(v)


@dataclass(frozen=True)
class TrainOptions:
    """What to train and how (``rtlgen train``'s options).

    Attributes
    ----------
    methods : tuple of str
        One or more of :data:`app.train.METHODS` (``calibrate`` alone).
    epochs, lr, batch, seed :
        Epochs (1 … 10,000; 0 only for ``calibrate``), learning rate (0 … 1], mini-batch
        size, seed of every draw (shuffling, masks, faults).
    optimizer : str
        ``adam`` (default) or ``sgd`` (with ``momentum``; the sparse method's default, since
        Adam would normalise its β scaling away).
    schedule : str
        ``constant`` or ``step`` (÷10 at half and three quarters of the steps, as Ozen 2023 §9.4.1).
    float_epochs : int
        Epochs of float training before the quantisation-aware ones (from scratch).
    dtype : str
        ``float32`` (default, fast) or ``float64`` (exact) for the training steps.
    layers : tuple of str or None
        Product layers the median filter or the bypass masks act on (None: every one).
    drop_rate : float
        Probability a PE (hardware masks) or a variable (random) is dropped: 1 − p of Ozen 2023
        §10.4 (p = 0.5 for the MLP there).
    drop_kind : str
        ``hardware`` (HDT: one R×C Bernoulli map per step, replicated over the tiles) or
        ``random`` (RDT: every variable on its own).
    alpha, penalty :
        Outlier regularisation coefficient and term (Ozen 2023 Eqs. 9.3/9.4, Table 9.1).
    fault_model, fault_rate, fault_targets, profile_mode :
        The campaign fault model of ``fault-aware`` training.
    afd_shift, afd_gates, afd_mode :
        ``afd``: the unit's run-time controls while training, γ = 2**shift, 1 or 2 gates,
        drop or clip (the same values ``rtlgen infer`` takes).
    flow_layers : dict
        ``sparse``: layer name → group size on the flow-controlling array.
    beta : float
        ``sparse``: gradient scale of the masked weights (Ozen 2023 Eq. 12.10; 0.1).
    batchnorm : bool
        Add a training-time BatchNorm after every product but the last (folded on export).
    init : str
        ``model`` (fine-tune the given weights) or ``random`` (He initialisation, from
        scratch, seeded).
    calib_images : int
        Training images the power-of-two scales are calibrated on (each epoch and at the end).
    """

    methods: tuple = ("qat",)
    epochs: int = 10
    lr: float = 1e-3
    batch: int = 64
    seed: int = 0
    optimizer: str | None = None
    momentum: float = 0.9
    schedule: str = "constant"
    float_epochs: int = 0
    dtype: str = "float32"
    layers: tuple | None = None
    drop_rate: float = 0.5
    drop_kind: str = "hardware"
    alpha: float = 1e-2
    penalty: str = "max-magnitude"
    fault_model: str = "bit_errors"
    fault_rate: float = 1e-3
    fault_targets: tuple = ("weights",)
    profile_mode: str = "bitflip"
    afd_shift: int = 1
    afd_gates: int = 1
    afd_mode: str = "drop"
    flow_layers: dict = field(default_factory=dict)
    beta: float = 0.1
    batchnorm: bool = False
    init: str = "model"
    calib_images: int = 512

    def __post_init__(self):
        """Check every value; ConfigError naming the option otherwise."""
        from ftaccel.app.train import METHODS

        methods = self.methods
        if isinstance(methods, str):
            methods = tuple(m.strip() for m in methods.split(","))
        methods = tuple(methods)
        if not methods or any(m not in METHODS for m in methods):
            bad = next((m for m in methods if m not in METHODS), methods)
            raise ConfigError("method", bad, f"one or more of {', '.join(METHODS)}")
        if len(set(methods)) != len(methods):
            raise ConfigError("method", ",".join(methods), "each method once")
        if "calibrate" in methods and len(methods) > 1:
            raise ConfigError("method", ",".join(methods), "calibrate alone (it does not train)")
        flows = [m for m in methods if m in METHOD_DATAFLOW]
        if len(flows) > 1:
            raise ConfigError("method", ",".join(methods), "one of dropconnect, dropout-in, "
                              "dropout-out (each models one dataflow's bypass)")
        object.__setattr__(self, "methods", methods)
        calibrate = methods == ("calibrate",)
        _count("epochs", self.epochs, 0 if calibrate else 1, MAX_EPOCHS)
        _number("lr", self.lr, 0.0, 1.0)
        _count("batch", self.batch, 1, 1 << 16)
        _count("seed", self.seed, 0, (1 << 63) - 1)
        opt = self.optimizer or ("sgd" if "sparse" in methods else "adam")
        if opt not in ("adam", "sgd"):
            raise ConfigError("optimizer", self.optimizer, "adam or sgd")
        object.__setattr__(self, "optimizer", opt)
        _number("momentum", self.momentum, 0.0, 1.0, open_lo=False, what="a number in [0, 1)")
        if self.momentum >= 1:
            raise ConfigError("momentum", self.momentum, "a number in [0, 1)")
        if self.schedule not in ("constant", "step"):
            raise ConfigError("schedule", self.schedule, "constant or step")
        _count("float_epochs", self.float_epochs, 0, max(int(self.epochs) - 1, 0))
        if self.dtype not in ("float32", "float64"):
            raise ConfigError("dtype", self.dtype, "float32 or float64")
        if self.layers is not None:
            layers = tuple(self.layers) if not isinstance(self.layers, str) else \
                tuple(s.strip() for s in self.layers.split(","))
            if not layers or not all(isinstance(s, str) and s for s in layers):
                raise ConfigError("layers", self.layers, "product layer names")
            object.__setattr__(self, "layers", layers)
        _number("drop_rate", self.drop_rate, 0.0, 1.0, what="a probability in (0, 1)")
        if self.drop_rate >= 1:
            raise ConfigError("drop_rate", self.drop_rate, "a probability in (0, 1)")
        if self.drop_kind not in ("hardware", "random"):
            raise ConfigError("drop_kind", self.drop_kind, "hardware or random")
        _number("alpha", self.alpha, 0.0, 1e3)
        if self.penalty not in ("max-magnitude", "max-squared"):
            raise ConfigError("penalty", self.penalty, "max-magnitude or max-squared")
        if self.fault_model not in FAULT_MODELS:
            raise ConfigError("fault_model", self.fault_model, " or ".join(FAULT_MODELS))
        _number("fault_rate", self.fault_rate, 0.0, 1.0)
        targets = tuple(self.fault_targets) if not isinstance(self.fault_targets, str) else \
            tuple(s.strip() for s in self.fault_targets.split(","))
        if not targets or any(t not in ("weights", "activations") for t in targets):
            raise ConfigError("fault_targets", self.fault_targets, "weights and/or activations")
        object.__setattr__(self, "fault_targets", targets)
        if self.profile_mode not in _PROFILE_MODES:
            raise ConfigError("profile_mode", self.profile_mode, ", ".join(_PROFILE_MODES))
        if "sparse" in methods and not self.flow_layers:
            raise ConfigError("flow_layers", self.flow_layers, "the layers to make "
                              "complementary-sparse (e.g. fc1:4), for --method sparse")
        _number("beta", self.beta, 0.0, 1.0, open_lo=False, what="a number in [0, 1]")
        if not isinstance(self.batchnorm, bool):
            raise ConfigError("batchnorm", self.batchnorm, "true or false")
        if self.init not in ("model", "random"):
            raise ConfigError("init", self.init, "model or random")
        _count("calib_images", self.calib_images, 1, 1 << 20)

    def to_dict(self) -> dict:
        """The options as JSON values (for ``train.json``)."""
        from dataclasses import asdict

        d = asdict(self)
        d["methods"] = list(self.methods)
        d["fault_targets"] = list(self.fault_targets)
        d["layers"] = None if self.layers is None else list(self.layers)
        return d
