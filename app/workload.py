"""The workload behind a power figure: ``--activity {default|FILE|network:NAME|matmul}``.

``rtlgen synth --power`` needs switching activity (:mod:`synth.activity`).  This module turns
the option into a waveform of the same design running real data:

* ``default``: no simulation; the stated default toggle rate (marked as such in the report);
* ``FILE``: a VCD/FST dump of this design made earlier (``WAVES=1 rtlgen matmul …``);
* ``network:NAME``: the first product layer of a built-in network (``digits-mlp``,
  ``digits-cnn``) on the first ``images`` test images, its quantised activations and weights
  as the design's configuration quantises them, simulated on the RTL with every signal dumped
  (:func:`tb.activity.record`);
* ``matmul``: a seeded uniform random int8/int16 product (``images`` × 2R @ 2R × 2C).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError

__all__ = ["Workload", "parse_activity", "record_workload"]

_FORMS = "default, a VCD/FST file, network:NAME (digits-mlp, digits-cnn) or matmul"


@dataclass(frozen=True)
class Workload:
    """An ``--activity`` value, parsed."""

    kind: str  # "default", "file", "network", "matmul"
    value: str = ""

    def describe(self) -> str:
        """The option as the report names it."""
        return {"default": "default", "file": f"file {self.value}",
                "network": f"network:{self.value}", "matmul": "matmul"}[self.kind]


def parse_activity(text: str | None) -> Workload:
    """``--activity`` text → :class:`Workload` (ConfigError for an unusable value)."""
    from ftaccel.app.network import BUILTIN

    if text is None or text == "default":
        return Workload("default")
    if text == "matmul":
        return Workload("matmul")
    if text.startswith("network:"):
        name = text.split(":", 1)[1]
        if name not in BUILTIN:
            raise ConfigError("activity", text, f"network:NAME with NAME one of "
                              f"{', '.join(sorted(BUILTIN))}")
        return Workload("network", name)
    path = Path(text)
    if path.suffix.lower() not in (".vcd", ".fst") or not path.is_file():
        raise ConfigError("activity", text, _FORMS + " (an existing .vcd or .fst)")
    return Workload("file", str(path))


def _network_operands(cfg: AcceleratorConfig, name: str, images: int):
    """The first product layer of built-in ``name`` on ``images`` test images: (A, B, bias, …)."""
    from ftaccel.app.datasets import digits
    from ftaccel.app.network import Network
    from ftaccel.golden.network import FunctionalEngine, run

    net = Network.builtin(name, a_width=cfg.a_width, w_width=cfg.w_width)
    x = net.check(cfg, digits("test").head(images).images)
    captured = []

    class _First(FunctionalEngine):
        name = "capture"

        def product(self, p):
            if not captured:
                captured.append(p)
            return super().product(p)

    run(net.model, x, _First(cfg))
    p = captured[0]
    return p.A, p.B, p.bias, bool(p.relu), int(p.shift), f"{name} layer {p.name}"


def record_workload(work: Workload, cfg: AcceleratorConfig, out: Path, *,
                    sim: str | None = None, images: int = 16,
                    seed: int = 1) -> tuple[Path | None, str]:
    """Simulate the workload on ``cfg``'s RTL with every signal dumped.

    Returns the waveform (None for ``default``) and a description for the report
    (``"digits-mlp layer fc1, 16 images: 16×64 @ 64×32, 412 cycles"``).
    """
    from ftaccel.tb.activity import record

    if work.kind == "default":
        return None, "default"
    if work.kind == "file":
        return Path(work.value), f"waveform {work.value}"
    if cfg.flow != "none":
        raise ConfigError("activity", work.describe(), "default or a waveform FILE for a "
                          "flow-controlling array (its products run from 'rtlgen matmul --flow')")
    if work.kind == "network":
        A, B, bias, relu, shift, what = _network_operands(cfg, work.value, images)
    else:
        rng = np.random.default_rng(seed)
        lo, hi = -(1 << (cfg.a_width - 1)), 1 << (cfg.a_width - 1)
        wl, wh = -(1 << (cfg.w_width - 1)), 1 << (cfg.w_width - 1)
        A = rng.integers(lo, hi, (images, 2 * cfg.rows))
        B = rng.integers(wl, wh, (2 * cfg.rows, 2 * cfg.cols))
        bias, relu, shift, what = None, False, 0, f"random matmul, seed {seed}"
    wave, cycles = record(cfg, A, B, out, bias=bias, relu=relu, shift=shift, sim=sim)
    shape = f"{A.shape[0]}×{A.shape[1]} @ {B.shape[0]}×{B.shape[1]}"
    return wave, f"{what}: {shape}, {cycles} cycles"
