"""Critical neurons and fault-aware scheduling: the logic of ``rtlgen nvf``, ``rtlgen protect``
and ``rtlgen schedule`` (issue 16; SPEC §5, §7).

Every command validates its inputs (model, data, threshold, profile, output folder) before any
work, then writes its reports through :class:`ftaccel.files.OutputSet` (all or nothing).  Bad
input raises :class:`CriticalError` (the CLI's exit 2) naming the option.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ftaccel.golden.network import ModelError
from ftaccel.rtl_gen.config import AcceleratorConfig

__all__ = ["CriticalError", "run_nvf", "nvf_markdown", "open_network", "load_images"]


class CriticalError(ValueError):
    """Bad input to nvf / protect / schedule: one line naming the option."""


def open_network(model: str, config: AcceleratorConfig, calib: str | None = None):
    """The :class:`tb.network.Network` named by ``--model`` (built-in, ``.npz``, ``.onnx``)."""
    from ftaccel.golden.datasets import load_data
    from ftaccel.tb.network import _open_model

    cal = load_data(calib).images if calib else None
    return _open_model(model, a_width=config.a_width, w_width=config.w_width, calibration=cal)


def load_images(data: str | None, split: str, images: int | None):
    """``--data`` (default the digits ``split``), the first ``images`` of it."""
    from ftaccel.golden.datasets import digits, load_data

    if images is not None and images < 1:
        raise CriticalError(f"--images {images}: must be at least 1")
    ds = load_data(data) if data else digits(split)
    return ds.head(images)


def _claim(outs, out: Path, names) -> None:
    if out.exists() and not out.is_dir():
        raise CriticalError(f"-o {out}: exists and is not a folder")
    outs.claim_folder(out, "-o", files=names)


# -- nvf -------------------------------------------------------------------------------------------

def nvf_markdown(res, table, table_hidden) -> str:
    """``nvf.md``: Table 4.10's analogue (all neurons and hidden only), then per layer the
    neurons sorted by NVF."""
    lines = [f"# NVF of {res.model}", "",
             f"{len(res.neurons)} neurons (product-layer output columns), {res.images} images, "
             f"{res.bits} bits per output ({'sign bit included' if res.sign else 'no sign bit'})"
             f", {res.evaluations:,} flipped evaluations in {res.seconds:.2f} s.", "",
             "NVF = P(top-1 changes | one bit flip in the neuron's output) (001 Algorithm 4.2,"
             " enumerated).", "",
             "## Critical neurons per threshold (Table 4.10 analogue)", "",
             "| NVF ≥ | neurons | share | hidden neurons | share |", "|---|---|---|---|---|"]
    for a, b in zip(table, table_hidden, strict=True):
        lines.append(f"| {a['threshold']} % | {a['neurons']} | {100 * a['share']:.2f} % | "
                     f"{b['neurons']} | {100 * b['share']:.2f} % |")
    lines += ["", "Thesis (001 Table 4.10, hidden neurons), NVF ≥ 20 %: MLP-7 17.86 %, LeNet-5 "
              "3.99 %, AlexNet 0.6 %; no neuron reaches 50 %.", "", "## Per neuron", ""]
    for layer in sorted({n.layer for n in res.neurons}):
        ns = sorted((n for n in res.neurons if n.layer == layer), key=lambda n: -n.nvf)
        lines += [f"### layer {layer} `{ns[0].layer_name}`"
                  f"{' (logits)' if ns[0].last else ''}: mean NVF "
                  f"{100 * np.mean([n.nvf for n in ns]):.2f} %", "",
                  "| neuron | NVF | per bit (LSB … MSB), % |", "|---|---|---|"]
        for n in ns:
            lines.append(f"| {n.neuron} | {100 * n.nvf:.2f} % | "
                         f"{' '.join(f'{100 * b:.1f}' for b in n.per_bit)} |")
        lines.append("")
    return "\n".join(lines)


def run_nvf(model: str, out_dir, *, config: AcceleratorConfig, data: str | None = None,
            calib: str | None = None, images: int | None = 500, sign: bool = True,
            pixels: int | None = 1, seed: int = 0, log=print):
    """``rtlgen nvf``: NVF of every neuron, ``nvf.json`` and ``nvf.md`` in ``out_dir``.

    The analysis runs on the training split by default (as the thesis does, L1796)."""
    from ftaccel.files import OutputSet
    from ftaccel.golden.nvf import nvf

    if pixels is not None and pixels < 1:
        raise CriticalError(f"--pixels {pixels}: must be at least 1 (--all-pixels for "
                            "every pixel)")
    out = Path(out_dir)
    with OutputSet() as outs:
        _claim(outs, out, ("nvf.json", "nvf.md"))
        ds = load_images(data, "train", images)
        net = open_network(model, config, calib)
        try:
            x = net.check(config, ds.images)
        except ModelError as exc:
            raise CriticalError(str(exc)) from None
        res = nvf(net.model, x, sign=sign, pixels=pixels, seed=seed)
        res.info = {"data": ds.name}
        d = res.to_dict()
        outs.mkdir(out)
        outs.write_json(out / "nvf.json", d)
        md = nvf_markdown(res, d["table"], d["table_hidden"])
        outs.write_text(out / "nvf.md", md)
    log(md.split("## Per neuron")[0].rstrip(), file=sys.stdout)
    return res
