# amaranth: UnusedElaboratable=no
"""The fixed-point requantisation multiplier in the composed accelerator (issue 23).

* configuration: ``requant`` defaults to ``"shift"``; ``"multiplier"`` adds three cycles of
  latency, needs the output stage and an accumulator of at most 32 bits (the error names both);
* ``requant = "shift"`` leaves the Verilog of every configuration byte-identical below its
  header (hashes pinned before the option existed) and adds no port;
* RTL = golden cycle model on every port in every cycle, and the assembled results =
  :func:`golden.output_stage.fixed_requantize` of ``A @ B + bias`` computed by numpy, for
  random tiled products on WS, IS and OS, single- and double-buffered, per-tensor and
  per-channel multipliers, zero points, ReLU and ReLU6 clamps, saturation and accumulators at
  the int32 extremes; ``golden.array.cycle_count`` follows the longer latency;
* the power-of-two path on the same hardware gives what the shift-only hardware gives;
* with the checksums, the flags stay aligned with ``out_valid``: a fault is flagged on the
  same rows and columns as on the shift-only hardware;
* bad input: one :class:`ConfigError` naming the field, the same from the API and
  ``rtlgen matmul`` (exit 2, nothing written).
"""

from __future__ import annotations

import hashlib

import amaranth
import numpy as np
import pytest

from ftaccel.app import cli
from ftaccel.config import REQUANT_STAGES, AcceleratorConfig
from ftaccel.errors import ConfigError
from ftaccel.golden.array import cycle_count
from ftaccel.golden.faults import Fault
from ftaccel.golden.output_stage import (
    Requant,
    fixed_requantize,
    output_stage,
    quantize_multiplier,
)
from ftaccel.golden.results import alarm_report
from ftaccel.golden.schedule import build_program
from ftaccel.rtl_gen import emit
from ftaccel.rtl_gen.accelerator import design_texts
from ftaccel.synth.units import default_unit
from ftaccel.tb.accelerator import mismatches, rtl_matmul
from ftaccel.tb.product import RunOptions, prepare

# Verilog below the configuration header, recorded before the option existed (amaranth 0.5.10).
_PINNED = {
    (("rows", 3), ("cols", 4)):
        "9f128c4234bf317b2b4239cd86c29bcdb111160357f57c46d2e2e76c8ca6c499",
    (("rows", 3), ("cols", 4), ("dataflow", "is")):
        "9cd07c3aa99f3e33cb6578692fa6a95aa57ddc6cb01f07f5c6c327128a9ea162",
    (("rows", 4), ("cols", 3), ("dataflow", "os")):
        "9676e36936f011347f6c0386d3aa9387ac73c99f21fa7d8112ba8a4a1a94a256",
    (("rows", 3), ("cols", 4), ("double_buffer", False)):
        "ed100dadb2d5a320b3e44b11718aecbd12a1bb7d0ddeacf253f1b7b6315c330e",
    (("rows", 3), ("cols", 4), ("lcu", True), ("lcu_depth", 8), ("lcu_max_pairs", 2)):
        "b114dcee63deffd1a8e7b8be7cb0e72eb341c9d9703a816adf2476f067e34df8",
    (("rows", 3), ("cols", 3), ("checksum", "both"), ("tmr", "word"), ("lcu_depth", 8),
     ("fault_hooks", True), ("bypass", True)):
        "658271a5d94c089182b4c5b12690faeaf6b861d2d4c13e6b59afd0d200cf65fe",
    (("rows", 2), ("cols", 2), ("output_stage", False)):
        "d7e9f05d8425bde8494efebc963aa651a9405b8d19d001a2b01d56afb4bb58de",
}


def _body(cfg: AcceleratorConfig) -> str:
    text = design_texts(cfg, rtlil_too=False)[1]
    head = emit.header(cfg.to_dict(), "accelerator")
    assert text.startswith(head)
    return text[len(head):]


def test_config_field():
    cfg = AcceleratorConfig(rows=4, cols=5)
    assert cfg.requant == "shift" and cfg.requant_stages == 0 and cfg.output_latency == 1
    mult = cfg.replace(requant="multiplier")
    assert mult.requant_stages == REQUANT_STAGES == 3
    assert mult.latency == cfg.latency + 3 and mult.output_latency == 4
    assert mult.name() == cfg.name() + "_rqm"
    assert AcceleratorConfig.from_json(mult.to_json()) == mult
    assert AcceleratorConfig.from_dict({"rows": 4, "cols": 5}).requant == "shift"
    # a16w16 at K = 1 is exactly 32 bits; a8w8 up to max_k = 65,536
    AcceleratorConfig(a_width=16, w_width=16, max_k=1, requant="multiplier")
    AcceleratorConfig(max_k=1 << 16, requant="multiplier")
    for kw, field, words in (
            ({"requant": "mult"}, "requant", "shift, multiplier"),
            ({"requant": "multiplier", "output_stage": False}, "requant", "output stage"),
            ({"requant": "multiplier", "max_k": (1 << 16) + 1}, "max_k", "requant"),
            ({"requant": "multiplier", "acc_width": 33}, "acc_width", "multiplier"),
            ({"requant": "multiplier", "flow": "shortened", "flow_group": 4}, "requant",
             "flow")):
        with pytest.raises(ConfigError) as exc:
            AcceleratorConfig(**kw)
        assert exc.value.field == field and words in str(exc.value), str(exc.value)


def test_area_flow_unit():
    top = "accelerator"
    assert default_unit("accelerator.output_stage.lane0.requant", top) == "requant"
    assert default_unit("accelerator.output_stage.lane0", top) == "output_stage"


def test_shift_leaves_the_verilog_unchanged():
    for items, digest in _PINNED.items():
        cfg = AcceleratorConfig(**dict(items))
        body = _body(cfg)
        assert body == _body(cfg.replace(requant="shift"))
        assert "requant" not in body and "fixed_point" not in body
        if amaranth.__version__ == "0.5.10":  # other versions may print the same design
            assert hashlib.sha256(body.encode()).hexdigest() == digest, items  # differently
    body = _body(AcceleratorConfig(rows=2, cols=3, requant="multiplier"))
    for port in ("requant__fixed", "requant__multiplier__2", "requant__shift__2",
                 "requant__zero_point", "requant__lo", "requant__hi"):
        assert f"input {'' if port == 'requant__fixed' else '['}" in body and port in body
    assert "input [30:0] requant__multiplier__0" in body


def _operands(rng, cfg, M, K, N):
    lo, hi = -(1 << (cfg.a_width - 1)), (1 << (cfg.a_width - 1)) - 1
    A = rng.integers(lo, hi + 1, (M, K))
    B = rng.integers(lo, hi + 1, (K, N))
    # the largest sums, both signs, in column 0: most negative × most negative, and × most
    # positive (every scale of _requant saturates them at both bounds)
    A[0], A[1], B[:, 0] = lo, hi, lo
    bias = rng.integers(-20000, 20000, N)
    return A, B, bias


def _requant(rng, acc, per_channel: bool, clamp: str, a_width: int = 8) -> Requant:
    """Scales of about 2**(a_width-1) per standard deviation of ``acc``, and a clamp.

    Most outputs land inside the clamp; _operands' extreme sums saturate at both ends.
    """
    top = 1 << (a_width - 1)
    cols = acc.shape[1] if per_channel else 1
    real = np.minimum(top / acc.std() * 2.0 ** rng.uniform(-0.5, 1, cols), 0.99)
    pairs = [quantize_multiplier(float(r)) for r in real]
    m0 = np.array([p[0] for p in pairs])
    n = np.array([p[1] for p in pairs])
    zp = int(rng.integers(-top // 2, top // 2))
    lo = hi = None
    if clamp in ("relu", "relu6"):
        lo = zp
    if clamp == "relu6":  # 6 / s_y with s_y = 1 / 10 of the range: hi = zp + 60
        hi = min(zp + 60, top - 1)
    if per_channel:
        return Requant(multiplier=m0, shift=n, zero_point=zp, lo=lo, hi=hi)
    return Requant(multiplier=int(m0[0]), shift=int(n[0]), zero_point=zp, lo=lo, hi=hi)


def _check_fixed(cfg, A, B, bias, rq):
    run = rtl_matmul(cfg, A, B, bias=bias, requant=rq)
    bad = mismatches(run.recorded, run.golden)
    assert not bad, f"RTL differs from the golden model (port, cycle, lane, rtl, golden): {bad}"
    acc = A @ B + bias
    assert np.array_equal(run.acc, acc if cfg.bias_in_psum else A @ B)
    want = fixed_requantize(acc, rq.multiplier, rq.shift, rq.zero_point, *rq.bounds(cfg.a_width))
    assert np.array_equal(run.q, want)
    valid = np.flatnonzero(run.recorded["out_valid"])
    M, K = A.shape
    assert valid[-1] + 1 == cycle_count(cfg, M, K, B.shape[1]) == run.program.cycles
    return want


CASES = [("ws", True, True, "none"), ("ws", False, False, "relu"), ("is", True, True, "relu6"),
         ("is", False, True, "none"), ("os", True, True, "relu"), ("os", False, True, "relu6")]


@pytest.mark.parametrize(("dataflow", "double_buffer", "per_channel", "clamp"), CASES)
def test_rtl_fixed_products(rng, dataflow, double_buffer, per_channel, clamp):
    """Tiled products (M, K and N beyond the 3×4 array) on the fixed-point path."""
    cfg = AcceleratorConfig(rows=3, cols=4, dataflow=dataflow, double_buffer=double_buffer,
                            max_k=64, requant="multiplier")
    A, B, bias = _operands(rng, cfg, 7, 8, 9)
    rq = _requant(rng, A @ B + bias, per_channel, clamp)
    want = _check_fixed(cfg, A, B, bias, rq)
    lo, hi = rq.bounds(cfg.a_width)
    assert (want == lo).any() and (want == hi).any() and ((want > lo) & (want < hi)).any()
    print(f"{cfg.name()}: {clamp}, per-channel {per_channel}, clamp [{lo}, {hi}], "
          f"{int(((want > lo) & (want < hi)).sum())} of {want.size} inside")


@pytest.mark.parametrize("dataflow", ["ws", "is", "os"])
def test_rtl_fixed_int32_extremes(dataflow):
    """Biased sums at 2**31 − 1 and −2**31, M0 at 2**30 and 2**31 − 1, n 0 and 62.

    a16w16, K = 2, ``acc_width = 32``: (−2**15)² + (−2**15)(−2**15 + 1) = 2**31 − 2**15, and
    the bias 2**15 − 1 takes it to 2**31 − 1; 2·(−2**15)(2**15 − 1) − 2**16 = −2**31.
    """
    cfg = AcceleratorConfig(rows=2, cols=3, dataflow=dataflow, a_width=16, w_width=16,
                            acc_width=32, requant="multiplier")
    lo, hi = -(1 << 15), (1 << 15) - 1
    A = np.array([[lo, lo], [hi, hi], [0, 0], [lo, hi]])
    B = np.array([[lo, hi, 1, lo], [lo + 1, hi, 1, hi]])
    bias = np.array([(1 << 15) - 1, -(1 << 16), 0, 0])
    acc = A @ B + bias
    assert acc[0, 0] == (1 << 31) - 1 and acc[0, 1] == -(1 << 31)
    for m0, n in ((1 << 30, 0), ((1 << 31) - 1, 62), ((1 << 31) - 1, 0), (1 << 30, 17)):
        rq = Requant(multiplier=np.array([m0, m0, (1 << 31) - 1, 1 << 30]),
                     shift=np.array([n, n, 30, 0]), zero_point=-5)
        _check_fixed(cfg, A, B, bias, rq)


def test_power_of_two_path_on_the_multiplier_hardware(rng):
    """With the select off, the multiplier hardware gives the shift-only hardware's results."""
    base = AcceleratorConfig(rows=3, cols=4, max_k=64)
    mult = base.replace(requant="multiplier")
    A, B, bias = _operands(rng, base, 6, 5, 7)
    for requant in (None, Requant(shift=7, relu=True)):
        kw = {"relu": True, "shift": 7} if requant is None else {"requant": requant}
        run = rtl_matmul(mult, A, B, bias=bias, **kw)
        assert not mismatches(run.recorded, run.golden)
        assert np.array_equal(run.q, output_stage(A @ B, bias, True, 7, 8))
        # K = 5 > R: a chained K-tile waits for the longer pipeline too
        assert run.program.cycles == cycle_count(mult, 6, 5, 7) > cycle_count(base, 6, 5, 7)
    assert cycle_count(mult, 6, 3, 7) == cycle_count(base, 6, 3, 7) + REQUANT_STAGES
    assert not build_program(mult, A, B, bias=bias).inputs["requant__fixed"].any()


def test_checksum_flags_stay_aligned(rng):
    """A fault is flagged on the same rows and columns with and without the multiplier."""
    base = AcceleratorConfig(rows=3, cols=4, max_k=64, checksum="both", fault_hooks=True,
                             lcu=True, lcu_depth=16, temporal_batch_bits=2)
    A, B, bias = _operands(rng, base, 6, 3, 4)  # one K-tile: the same PE timing in both
    fault = Fault(1, 2, "psum", 5, "flip", 9)  # below a_width: the residue check sees it
    reports = []
    for cfg in (base, base.replace(requant="multiplier")):
        extra = ({"requant": Requant(multiplier=1 << 30, shift=12)}
                 if cfg.requant == "multiplier" else {"shift": 12})
        run = rtl_matmul(cfg, A, B, bias=bias, fault=fault, **extra)
        assert not mismatches(run.recorded, run.golden)
        reports.append(alarm_report(cfg, run.program, run.recorded))
    assert reports[0]["alarm"] and reports[0]["spatial"]["rows_flagged"]
    for key in ("spatial", "temporal"):
        assert reports[0][key]["flagged"] != []
        strip = [[{k: v for k, v in f.items() if k != "cycle"} for f in r[key]["flagged"]]
                 for r in reports]
        assert strip[0] == strip[1], key
    assert reports[0]["located"] == reports[1]["located"]


def test_bad_requant_is_one_config_error_from_api_and_cli(tmp_path, capsys):
    mult = AcceleratorConfig(rows=2, cols=2, requant="multiplier")
    shift_cfg = AcceleratorConfig(rows=2, cols=2)
    A, B = np.ones((2, 3), np.int64), np.ones((3, 3), np.int64)
    np.save(tmp_path / "A.npy", A)
    np.save(tmp_path / "B.npy", B)
    cases = [  # (config, Requant, CLI options, field)
        (shift_cfg, Requant(multiplier=1 << 30, shift=3), ["--multiplier", "1073741824",
                                                            "--requant-shift", "3"], "requant"),
        (mult, Requant(multiplier=1 << 31, shift=3), ["--multiplier", str(1 << 31),
                                                       "--requant-shift", "3"],
         "requant multiplier"),
        (mult, Requant(multiplier=np.array([1 << 30] * 2), shift=3),
         ["--multiplier", "1073741824,1073741824", "--requant-shift", "3"],
         "requant multiplier"),
        (mult, Requant(multiplier=1 << 30, shift=63), ["--multiplier", "1073741824",
                                                        "--requant-shift", "63"],
         "requant shift"),
        (mult, Requant(multiplier=1 << 30, shift=3, zero_point=128),
         ["--multiplier", "1073741824", "--requant-shift", "3", "--zero-point", "128"],
         "requant zero_point"),
        (mult, Requant(multiplier=1 << 30, shift=3, lo=5, hi=4),
         ["--multiplier", "1073741824", "--requant-shift", "3", "--clamp", "5", "4"],
         "requant clamp"),
    ]
    for cfg, rq, options, field in cases:
        with pytest.raises(ConfigError) as exc:
            prepare(cfg, A, B, RunOptions(requant=rq))
        assert exc.value.field == field
        out = tmp_path / "C.npy"
        argv = ["matmul", "--rows", "2", "--cols", "2", "--a", str(tmp_path / "A.npy"),
                "--b", str(tmp_path / "B.npy"), "-o", str(out), *options]
        if cfg.requant == "multiplier":
            argv += ["--requant", "multiplier"]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(exc.value) in err[0], (err, str(exc.value))
        assert not out.exists()
    with pytest.raises(ConfigError, match="relu/shift"):
        prepare(mult, A, B, RunOptions(relu=True, requant=Requant(multiplier=1 << 30)))
    for options in (["--scale", "1.5"], ["--zero-point", "3"], ["--clamp", "1", "x"],
                    ["--scale", "0.1", "--multiplier", "1073741824"]):
        argv = ["matmul", "--rows", "2", "--cols", "2", "--requant", "multiplier",
                "--a", str(tmp_path / "A.npy"), "--b", str(tmp_path / "B.npy"),
                "-o", str(tmp_path / "C.npy"), *options]
        assert cli.main(argv) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_cli_matmul_fixed_path(tmp_path, rng, capsys):
    """``rtlgen matmul --scale … --zero-point … --clamp …`` writes q = fixed_requantize."""
    cfg = AcceleratorConfig(rows=3, cols=3, requant="multiplier")
    A, B, bias = _operands(rng, cfg, 4, 5, 4)
    for name, v in (("A", A), ("B", B), ("bias", bias)):
        np.save(tmp_path / f"{name}.npy", v)
    scales = [0.003, 0.0011, 0.0007, 0.002]
    argv = ["matmul", "--rows", "3", "--cols", "3", "--requant", "multiplier",
            "--a", str(tmp_path / "A.npy"), "--b", str(tmp_path / "B.npy"),
            "--bias", str(tmp_path / "bias.npy"), "-o", str(tmp_path / "C.npy"),
            "--q", str(tmp_path / "Q.npy"), "--scale", ",".join(map(str, scales)),
            "--zero-point", "-7", "--clamp", "-7", "120", "--check"]
    assert cli.main(argv) == 0, capsys.readouterr()
    pairs = [quantize_multiplier(s) for s in scales]
    want = fixed_requantize(A @ B + bias, [p[0] for p in pairs], [p[1] for p in pairs], -7,
                            -7, 120)
    assert np.array_equal(np.load(tmp_path / "Q.npy"), want)
    assert "check passed" in capsys.readouterr().out
