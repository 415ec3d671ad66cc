"""``rtlgen``: generate, simulate, verify and synthesise fault-tolerant systolic arrays.

A thin layer: it parses the command line, checks every output path before any work, turns
text options into values, and dispatches to the room that owns the work —
:func:`rtl_gen.accelerator.generate`, :mod:`tb.product` (``matmul``), :mod:`tb.regression`
(``verify``), :func:`synth.flow.synthesize` (``synth``), :mod:`ftaccel.app.demo` (``demo``),
:mod:`app.campaign` (``campaign``), :mod:`app.compare` (``compare``), :mod:`app.critical`
(``nvf``, ``protect``, ``schedule``), :mod:`app.train` (``train``).
Every command writes through :class:`ftaccel.files.OutputSet`: all or nothing.

Exit codes: 0 success; 1 a check or verification found a mismatch; 2 invalid option,
configuration, operand or path (one line on stderr, nothing written); 3 a tool is missing or
failed (simulator, Yosys), the log named; 4 ``--fail-on-alarm`` and a checksum raised its
alarm (1 wins when both apply); 70 an internal error (a bug: one line, ``RTLGEN_TRACEBACK=1``
shows the traceback); 130 interrupted (SIGINT), 143 terminated (SIGTERM): simulators and
workers are stopped and run folders and temporaries removed first.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from functools import partial
from pathlib import Path

from ftaccel import units
from ftaccel.app import critical
from ftaccel.app.campaign import CampaignError, run_campaign, to_markdown
from ftaccel.app.datasets import DataError
from ftaccel.app.onnx_import import OnnxMissing
from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError, Terminated, one_line, shown
from ftaccel.files import (
    FileProblem,
    OutputSet,
    check_folder,
    check_input,
    check_target,
    read_npy,
)
from ftaccel.golden import units as golden_units
from ftaccel.golden.faults import Fault
from ftaccel.golden.network import ModelError
from ftaccel.golden.results import alarm_lines

# The rooms that pull in Amaranth (rtl_gen, synth) or cocotb and the simulator runner (tb,
# and the network and demo of the application, which run on them) are imported by the
# commands that use them, so that every other command starts without them.

EXIT_MISMATCH, EXIT_INPUT, EXIT_TOOL, EXIT_ALARM, EXIT_INTERNAL = 1, 2, 3, 4, 70
#: Interrupted (SIGINT) and terminated (SIGTERM): 128 + the signal, as a shell reports it.
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143

#: Configuration fields, each with one command-line option (from the unit registry).
CONFIG_OPTIONS = tuple(f.name for f in units.config_fields())


class CLIError(Exception):
    """An error to report as one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_INPUT):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and a hint, not the whole usage."""

    def error(self, message: str):
        """Raise one line with a hint (argparse would print the usage and exit)."""
        raise CLIError(f"{message} (see '{self.prog} --help')")


# -- argument types: each rejects its text with one short line ------------------------------
def _integer(text: str) -> int:
    t = text.strip()
    if not t.isascii():  # int() would read other scripts' digits: '١٢' is 12
        raise argparse.ArgumentTypeError(f"{shown(text)} is not an integer in ASCII digits")
    if not t or len(t) > 24:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not an integer of at most 24 "
                                         "digits")
    try:
        return int(t, 0) if t.lower().startswith(("0x", "-0x", "0b", "-0b")) else int(t, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not an integer") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a positive number of seconds")
    return value


def _mhz(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a frequency in MHz") from None
    if not math.isfinite(value) or not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a frequency in MHz above 0, "
                                         "at most 10000")
    return value


def _path(text: str) -> Path:
    if not text:
        raise argparse.ArgumentTypeError("empty path")
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"{shown(text)} contains a NUL byte")
    return Path(text)


# -- networks ----------------------------------------------------------------------------------
_TRAIN_DATA = "analysis images (default: the digits training split)"


def _add_model_options(p: argparse.ArgumentParser, *, data: str | None,
                       calib: str = "calibration images for an ONNX or float model") -> None:
    """``--model`` (required), ``--data`` (when ``data``, its help, is given) and ``--calib``."""
    p.add_argument("--model", required=True,
                   help="digits-mlp, digits-cnn, FILE.onnx or a model FILE.npz")
    if data is not None:
        p.add_argument("--data", help=data)
    p.add_argument("--calib", help=calib)


# -- configuration ---------------------------------------------------------------------------
def _add_config_options(p: argparse.ArgumentParser) -> None:
    """``--config`` and one option per configuration field, from the unit registry."""
    g = p.add_argument_group("configuration (a --config file, overridden by any option given)")
    g.add_argument("--config", type=_path, help="JSON configuration (as written by generate)")
    for f in units.config_fields():
        if f.kind in ("on", "off"):
            g.add_argument(f.option, dest=f.name, action=f"store_{f.kind == 'on'}".lower(),
                           default=None, help=f.help)
        else:
            g.add_argument(f.option, dest=f.name, help=f.help,
                           type=_integer if f.kind == "int" else None)


# -- the units' run-time options --------------------------------------------------------------
def _add_unit_options(p: argparse.ArgumentParser, *, per_product: bool) -> None:
    """The run-time flags of every unit (:func:`ftaccel.units.run_flags`).

    ``per_product``: also those that name one product's columns or rows (``matmul``).
    """
    g = p.add_argument_group("run-time unit options (checked against the configuration)")
    for flag in units.run_flags(per_product=per_product):
        if flag.kind == "on":
            g.add_argument(flag.flag, action="store_true", help=flag.help)
        else:
            g.add_argument(flag.flag, help=flag.help,
                           type={"int": _integer, "npy": _path}.get(flag.kind))


def _unit_values(args) -> dict:
    """The parsed values of the units' run-time flags: files read, lists split (syntax)."""
    values = {}
    for flag in units.run_flags():
        value = getattr(args, flag.dest, None)
        if value is None or value is False:
            continue
        if flag.kind == "npy":
            value = read_npy(value, flag.flag)
        elif flag.kind in ("columns", "ints"):
            value = _int_list(value, flag.flag)
        elif flag.kind in ("pairs", "triples"):
            k = 2 if flag.kind == "pairs" else 3
            value = _column_groups(value, flag.flag, k, flag.kind[:-1])
        values[flag.dest] = value
    return values


def _unit_options(cfg: AcceleratorConfig, args, n_out: int | None) -> dict:
    """Every unit's run-time options from the command line, checked against ``cfg``.

    The same :class:`ftaccel.units.UnitOptions` and checks as the API: ``matmul`` checks them
    again for the product (columns, rows, the output buffer) in :func:`tb.product.prepare`.
    """
    opts = units.options_from_flags(_unit_values(args), n_out)
    units.check_options(cfg, opts, n=n_out)
    return opts


def _generator(cfg: AcceleratorConfig):
    """The generator of ``cfg``'s top and the files it writes.

    The composed accelerator, or the flow-controlling array, which is a top of its own
    (:mod:`rtl_gen.flow`).
    """
    if cfg.flow != "none":
        from ftaccel.rtl_gen.flow import FLOW_GENERATED_FILES, generate_flow  # (heavy: Amaranth)

        return generate_flow, FLOW_GENERATED_FILES
    from ftaccel.rtl_gen.accelerator import GENERATED_FILES, generate  # (heavy: Amaranth)

    return generate, GENERATED_FILES


def _config(args, defaults: dict | None = None) -> AcceleratorConfig:
    """The configuration: ``--config`` (else ``defaults``), overridden by every option given."""
    if args.config is not None:
        base = AcceleratorConfig.load(args.config).to_dict()
    else:
        base = dict(defaults or {})
    for key in CONFIG_OPTIONS:
        value = getattr(args, key, None)
        if value is not None:
            base[key] = value
    return AcceleratorConfig.from_dict(base)


# -- text options that become values ----------------------------------------------------------
def _int_list(text: str, what: str, sep: str = ",") -> list[int]:
    items = [v.strip() for v in text.split(sep)]
    if not text.strip() or any(not v for v in items):
        raise CLIError(f"{what}: {shown(text)} is not a list of column numbers")
    try:
        return [_integer(v) for v in items]
    except argparse.ArgumentTypeError:
        raise CLIError(f"{what}: {shown(text)} is not a list of column numbers") from None


def _column_groups(text: str, option: str, k: int, entry: str) -> list[list[int]]:
    """Comma-separated groups of ``k`` colon-separated column numbers (syntax only).

    ``entry`` names one group in the error message ("pair", "triple"); whether the columns
    exist and differ is the unit options' check, the same as the API's.
    """
    form = ":".join(f"c{i + 1}" for i in range(k))
    groups = []
    for item in text.split(","):
        cols = _int_list(item, option, sep=":")
        if len(cols) != k:
            raise CLIError(f"{option}: {shown(item)} is not a {entry} '{form}'")
        groups.append(cols)
    return groups


def _requant(args):
    """The fixed-point :class:`Requant` of ``matmul``'s requantisation options, or None.

    Parsing only; :func:`golden.schedule.check_requant` validates the values (as the API).
    """
    import numpy as np

    from ftaccel.golden.output_stage import Requant, quantize_multiplier

    given = [o for o in ("multiplier", "requant_shift", "scale", "zero_point", "clamp")
             if getattr(args, o) is not None]
    if not given:
        return None
    if args.scale is not None:
        if args.multiplier is not None or args.requant_shift is not None:
            raise CLIError("--scale replaces --multiplier and --requant-shift: give one or "
                           "the other")
        try:
            scales = [float(v) for v in args.scale.split(",")]
            pairs = [quantize_multiplier(v) for v in scales]
        except ValueError as exc:
            raise CLIError(f"--scale: {one_line(exc)} (a real multiplier s_a·s_w/s_y per "
                           "output column, or one for all)") from None
        multiplier, shift = ([p[i] for p in pairs] for i in (0, 1))
    elif args.multiplier is None or args.requant_shift is None:
        raise CLIError(f"--{given[0].replace('_', '-')} needs --multiplier and --requant-shift "
                       "(or --scale)")
    else:
        multiplier = _int_list(args.multiplier, "--multiplier")
        shift = _int_list(args.requant_shift, "--requant-shift")
    lo, hi = args.clamp if args.clamp is not None else (None, None)
    one = len(multiplier) == 1 and len(shift) == 1
    return Requant(multiplier=multiplier[0] if one else np.asarray(multiplier),
                   shift=shift[0] if one else np.asarray(shift),
                   zero_point=0 if args.zero_point is None else args.zero_point, lo=lo, hi=hi)


def _fault(text: str):
    try:
        return Fault.parse(text)
    except ValueError as exc:
        raise CLIError(f"--fault: {str(exc).splitlines()[0]}") from None


def _claim_outputs(outs, args, names: tuple[str, ...]) -> None:
    """Check every output path given (``-o``, ``--q``, ...) before any work; no two alike."""
    seen: dict[str, str] = {}
    for name in names:
        path = getattr(args, name, None)
        if path is None:
            continue
        flag = "-o" if name == "output" else f"--{name.replace('_', '-')}"
        outs.claim(path, what=flag)
        key = os.path.abspath(path)
        if key in seen:
            raise CLIError(f"{flag} and {seen[key]} name the same file {shown(str(path))}")
        seen[key] = flag


# -- commands --------------------------------------------------------------------------------
def cmd_generate(args) -> int:
    """``rtlgen generate``: Verilog, RTLIL and config.json into the output folder."""
    cfg = _config(args)
    generate, files = _generator(cfg)
    t0 = time.perf_counter()
    with OutputSet() as outs:
        outs.claim_folder(args.output, "-o", files=files)
        gen = generate(cfg, args.output)
    print(f"wrote {gen.verilog} ({gen.verilog.stat().st_size} bytes, top '{gen.top}', PE module "
          f"'{gen.pe_module}'), {gen.rtlil} and {gen.config_json} in "
          f"{time.perf_counter() - t0:.2f} s")
    return 0


def _run_options(cfg: AcceleratorConfig, args, A, B):
    """The product's run-time options: the output stage's, a fault, every unit's."""
    from ftaccel.tb.product import RunOptions  # (heavy: cocotb, Amaranth)

    n_out = B.shape[1] if getattr(B, "ndim", 0) == 2 else 0
    bias = read_npy(args.bias, "--bias") if args.bias is not None else None
    fault = _fault(args.fault) if args.fault is not None else None
    return RunOptions(bias=bias, relu=args.relu, shift=args.shift, fault=fault,
                      requant=_requant(args), units=_unit_options(cfg, args, n_out))


def cmd_matmul(args) -> int:
    """``rtlgen matmul``: one product on the RTL (:mod:`tb.product`), outputs all or nothing."""
    from ftaccel.tb.product import prepare, run_product  # (heavy: cocotb, Amaranth)

    cfg = _config(args)
    if cfg.flow != "none":
        return cmd_matmul_flow(args, cfg)
    if args.pack_group is not None or args.prune:
        raise CLIError("--pack-group/--prune need a configuration with --flow")
    with OutputSet() as outs:
        _claim_outputs(outs, args, ("output", "q", "corrected", "json"))
        if args.q is not None and not cfg.output_stage:
            raise CLIError("--q needs the output stage (drop --no-output-stage)")
        if args.fault is not None and not cfg.fault_hooks:
            cfg = cfg.replace(fault_hooks=True)
            print("note: --fault given: generating with fault hooks")
        A = read_npy(args.a, "--a")
        B = read_npy(args.b, "--b")
        opts = _run_options(cfg, args, A, B)
        program = prepare(cfg, A, B, opts)  # every check, before any simulation
        if args.corrected is not None and program.buffer_row is None:
            raise CLIError("--corrected needs a configuration with --lcu or --tmr")
        # The golden cycle model runs when its verdict is asked for (--check, --json).
        res = run_product(cfg, A, B, opts, sim=args.sim, program=program,
                          check=args.check or args.json is not None)

        code = 0
        if args.check and not res.passed:
            code = EXIT_MISMATCH
        elif args.fail_on_alarm and res.alarms.get("alarm"):
            code = EXIT_ALARM
        written = {"C": str(outs.write_npy(args.output, res.run.acc))}
        if args.q is not None:
            written["Q"] = str(outs.write_npy(args.q, res.run.q))
        if args.corrected is not None:
            written["corrected"] = str(outs.write_npy(args.corrected, res.corrected))
        if args.json is not None:
            written["json"] = str(args.json)
            outs.write_json(args.json, res.record(outputs=written, exit_code=code))

    M, K, N = res.shape
    print(f"C = A @ B: {M}×{K} @ {K}×{N} on {cfg.rows}×{cfg.cols} {cfg.dataflow.upper()}, "
          f"{res.run.program.cycles} cycles, simulated in {res.seconds:.1f} s on {res.sim}; "
          f"wrote {', '.join(v for k, v in written.items())}")
    for line in alarm_lines(res.alarms):
        print(line)
    for line in golden_units.run_lines(cfg, res.unit_records()):
        print(line)
    if res.fault_effect is not None:
        what = " and ".join(x for x in (args.fault and f"fault {args.fault}",
                                        args.bias_error and f"bias error {args.bias_error}") if x)
        print(f"{what}: {res.fault_effect} of {M * N} outputs differ from the fault-free "
              "product")
    if args.check:
        if res.passed:
            print("check passed: RTL equals the golden model on every port in every cycle"
                  + (" (with the fault)" if opts.fault else ""))
        else:
            print(f"CHECK FAILED: {res.result_mismatches()} results and "
                  f"{len(res.port_mismatches)}+ port values differ from the golden model; "
                  f"run folder kept: {res.run.run_dir} (log: {res.run.log})")
    if code == EXIT_ALARM:
        print("exit 4: a checksum raised its alarm (--fail-on-alarm)")
    return code


def cmd_matmul_flow(args, cfg: AcceleratorConfig) -> int:
    """``matmul`` on the flow-controlling array: B (sparse) is packed there (Ozen 2023 §12.5.2)."""
    from ftaccel.tb.flow import flow_product  # (heavy: cocotb, Amaranth)
    from ftaccel.tb.product import check_accumulator, check_operands

    for opt in ("fault", "corrected", "json", "multiplier", "requant_shift", "scale", "zero_point",
                "clamp", *(f.dest for f in units.run_flags())):
        if getattr(args, opt) not in (None, False):
            raise CLIError(f"--{opt.replace('_', '-')} is not available with --flow {cfg.flow}")
    with OutputSet() as outs:
        _claim_outputs(outs, args, ("output", "q"))
        if args.q is not None and not cfg.output_stage:
            raise CLIError("--q needs the output stage (drop --no-output-stage)")
        A = read_npy(args.a, "--a")
        B = read_npy(args.b, "--b")
        bias = read_npy(args.bias, "--bias") if args.bias is not None else None
        A, B, bias = check_operands(cfg, A, B, bias)
        check_accumulator(cfg, A, B, bias)
        res = flow_product(cfg, A, B, group=args.pack_group, prune_first=args.prune, bias=bias,
                           relu=args.relu, shift=args.shift, sim=args.sim, check=args.check)
        outs.write_npy(args.output, res.run.acc)
        if args.q is not None:
            outs.write_npy(args.q, res.run.q)
    (M, K), N, p = A.shape, B.shape[1], res.packed
    print(f"C = A @ B: {M}×{K} @ {K}×{N} packed in {p.gl}×{p.gk} groups into "
          f"{p.values.shape[0]}×{p.values.shape[1]} on {cfg.rows}×{cfg.cols} WS "
          f"{cfg.flow}-{cfg.flow_group}: {res.cycles} cycles ({res.dense_cycles} for the dense "
          f"layer, {res.dense_cycles / res.cycles:.2f}× faster), simulated in "
          f"{res.seconds:.1f} s; wrote {args.output}")
    if res.passed is False:
        print(f"CHECK FAILED: the RTL differs from the golden model or numpy; run folder "
              f"kept: {res.run.log.parent} (log: {res.run.log})")
        return EXIT_MISMATCH
    if res.passed:
        print("check passed: RTL equals the golden model, cycle by cycle, and numpy's A @ B")
    return 0


def cmd_verify(args) -> int:
    """``rtlgen verify``: the seeded random regression of :mod:`tb.regression`."""
    from ftaccel.tb.regression import regression  # (heavy: cocotb, Amaranth)

    cfg = _config(args)
    if cfg.flow != "none":
        if args.json is not None:
            raise CLIError(f"--json is not available with --flow {cfg.flow}")
        from ftaccel.tb.flow import verify_flow  # (heavy: cocotb, Amaranth)

        return EXIT_MISMATCH if verify_flow(cfg, seed=args.seed, count=args.count,
                                            sim=args.sim) else 0
    with OutputSet() as outs:
        _claim_outputs(outs, args, ("json",))
        print(f"verify {cfg.name()} on {args.sim or os.environ.get('SIM') or 'icarus'}: seed "
              f"{args.seed}, {args.count} cases")
        result = regression(cfg, seed=args.seed, count=args.count, sim=args.sim,
                            progress=print)
        code = EXIT_MISMATCH if result["failed"] else 0
        if args.json is not None:
            outs.write_json(args.json, {**result, "exit_code": code})
    print(f"{result['passed']} passed, {result['failed']} failed (seed {args.seed})"
          + (f"; wrote {args.json}" if args.json is not None else ""))
    return code


def _check_folders(outs, out: Path, extra: dict[str, tuple[str, ...]]) -> None:
    """Claim ``out`` and check the sub-folders and files a command will write in it."""
    outs.claim_folder(out, "-o", files=extra.get("", ()))
    for sub, names in extra.items():
        if sub:
            check_folder(out / sub, "-o")
            for name in names:
                check_target(out / sub / name, "-o")


def _synth_files(generated: tuple[str, ...], prefix: str = "") -> dict[str, tuple[str, ...]]:
    """The sub-folders and files ``synth`` writes, below ``prefix``."""
    join = (lambda sub: f"{prefix}/{sub}" if sub else prefix) if prefix else (lambda sub: sub)
    return {join(""): ("area.json", "area.md", "area.png"), join("rtl"): generated,
            join("yosys"): ()}


def cmd_synth(args) -> int:
    """``rtlgen synth``: generate, synthesise, print the headline areas (timing, power)."""
    from ftaccel.synth.flow import synthesize  # (heavy: Amaranth, Yosys)
    from ftaccel.synth.sta import require_sta
    from ftaccel.synth.summary import headline

    cfg = _config(args)
    generate, files = _generator(cfg)
    # the flow-controlling PE is the PE of its array: overheads are measured on it
    area_units = {"flow_pe_": "pe"} if cfg.flow != "none" else None
    out = Path(args.output)
    if args.liberty is not None:
        check_input(args.liberty, "--liberty")
    work = _activity_option(args)
    if args.timing or args.power:
        require_sta()  # a missing OpenSTA: exit 3 before any work
    with OutputSet() as outs:
        extra = _synth_files(files)
        if work is not None and work.kind in ("network", "matmul"):
            extra["activity"] = ("waves.fst", "waves.vcd")
        _check_folders(outs, out, extra)
        gen = generate(cfg, out / "rtl")
        wave, what = None, ""
        if work is not None and work.kind != "default":
            from ftaccel.app.workload import record_workload

            wave, what = record_workload(work, cfg, out / "activity" / "waves", sim=args.sim)
        t0 = time.perf_counter()
        report = synthesize(gen.verilog, gen.top, out, liberty=args.liberty, flat=args.flat,
                            timeout_s=args.timeout, units=area_units, timing=args.timing,
                            power=args.power, activity=wave, workload=what,
                            clock_mhz=args.clock_mhz, wire_load=not args.no_wire_load)
    print(f"synthesised {cfg.name()} in {time.perf_counter() - t0:.1f} s:")
    for line in headline(report):
        print("  " + line)
    print(f"full report: {out / 'area.md'} (tables), {out / 'area.json'}, {out / 'area.png'}")
    return 0


def _activity_option(args):
    """``--activity`` parsed (None without ``--power``; an error if given without it)."""
    from ftaccel.app.workload import parse_activity

    if not args.power:
        if args.activity is not None:
            raise CLIError("--activity needs --power (it is the switching activity of the "
                           "power analysis)")
        if args.clock_mhz is not None:
            raise CLIError("--clock-mhz needs --power (timing reports the shortest period)")
        return None
    return parse_activity(args.activity)


def cmd_demo(args) -> int:
    """``rtlgen demo``: :func:`ftaccel.app.demo.run_demo` on the demo configuration."""
    from ftaccel.app.demo import DEMO_DEFAULTS, run_demo  # (heavy: every room)
    from ftaccel.rtl_gen.accelerator import GENERATED_FILES  # (heavy: Amaranth)

    cfg = _config(args, defaults=DEMO_DEFAULTS)
    if cfg.flow != "none":
        raise CLIError("demo does not take --flow; try matmul --flow … --check")
    if not 0 <= args.seed < 1 << 63:
        raise CLIError(f"--seed {args.seed}: must be 0 … 2**63 − 1")
    out = Path(args.output)
    if args.compare is not None:  # the headline's spec and folder, before anything is written
        from ftaccel.app.compare import check_compare_folder, load_compare

        try:
            load_compare(args.compare)
            check_compare_folder(out / "compare")
        except CampaignError as exc:
            raise CLIError(f"--compare: {exc}") from None
    with OutputSet() as outs:
        _check_folders(outs, out, {"": ("demo.json",), "rtl": GENERATED_FILES,
                                   **_synth_files(GENERATED_FILES, "synth"), "campaign": ()})
        report = run_demo(cfg, out, seed=args.seed, sim=args.sim, timeout=args.timeout,
                          compare_spec=args.compare)
    return 0 if report["passed"] else EXIT_MISMATCH


def _layer_options(args):
    """The per-layer options of ``--permutation`` / ``--protection`` (checked on the model)."""
    if args.permutation is not None and args.protection is not None:
        raise CLIError("--permutation and --protection: give one (a protection has its own "
                       "placement)")
    if args.permutation is not None:
        return partial(critical.permutation_options, args.permutation)
    if args.protection is not None:
        return partial(critical.protection_options, args.protection)
    return None


def _flow_layers(args, cfg: AcceleratorConfig) -> dict | None:
    """``--flow-layers fc1:4,fc2`` → ``{"fc1": 4, "fc2": cfg.flow_group}``.

    A layer is named or indexed; its group defaults to the hardware's.
    """
    if args.flow_layers is None:
        if args.flow_prune:
            raise CLIError("--flow-prune needs --flow-layers (the layers to prune and pack)")
        return None
    if cfg.flow == "none":
        raise CLIError("--flow-layers needs a flow-controlling array (--flow shortened, "
                       "superposition or twodim)")
    out: dict = {}
    for item in args.flow_layers.split(","):
        name, _, group = item.strip().partition(":")
        if not name:
            raise CLIError(f"--flow-layers {shown(args.flow_layers)}: expected "
                           "LAYER[:GROUP],… (e.g. fc1:4,fc2:4)")
        try:
            g = _integer(group) if group else cfg.flow_group
        except argparse.ArgumentTypeError as exc:
            raise CLIError(f"--flow-layers {name}: group {exc}") from None
        key = int(name) if name.isascii() and name.isdigit() else name
        if key in out:
            raise CLIError(f"--flow-layers: layer {name} given twice")
        out[key] = g
    return out


def cmd_infer(args) -> int:
    """Run a network on images on the golden model, the cycle model or the RTL."""
    from ftaccel.app.network import AUTO_FIELDS, infer  # (heavy: the RTL engine)
    from ftaccel.app.train import JaxMissing

    cfg = _config(args)
    # every layer's unit options: the same typed options and checks as matmul and the API
    unit_kw = units.to_keywords(units.with_defaults(cfg, _unit_options(cfg, args, None)))
    # without --config, the fields the user left out are chosen for the model (e.g. the
    # multiplier for an int8 model with its own scales)
    auto = () if args.config is not None else tuple(
        f for f in AUTO_FIELDS if getattr(args, f, None) is None)
    try:
        res = infer(args.model, args.output, config=cfg, data=args.data, calib=args.calib,
                    images=args.images, engine=args.engine, sim=args.sim, units=unit_kw,
                    progress=None, layer_options=_layer_options(args),
                    flow_layers=_flow_layers(args, cfg), flow_prune=args.flow_prune,
                    flow_epochs=args.flow_epochs, auto=auto,
                    sources={"protection": args.protection, "permutation": args.permutation})
    except _CRITICAL_ERRORS as exc:
        raise CLIError(str(exc)) from None
    except (OnnxMissing, JaxMissing) as exc:  # --flow-prune train needs the train extra
        raise CLIError(str(exc), EXIT_TOOL) from None
    print(res.to_markdown())
    print(f"wrote {Path(args.output) / 'infer.json'} and {Path(args.output) / 'infer.md'}")
    _energy(args, cfg, res)
    return 0


def _energy(args, cfg: AcceleratorConfig, res) -> None:
    """Energy per inference (:func:`synth.energy.energy_per_inference`) into ``energy.json``.

    Always when the configuration's power is cached (a ``rtlgen synth --power`` of the same
    configuration); with ``--energy`` and nothing cached, the power is analysed now (area,
    then OpenSTA with the default activity) into ``<output>/synth``.
    """
    from ftaccel.files import write_json
    from ftaccel.synth.energy import energy_per_inference, lookup

    figures = lookup(cfg.to_dict())
    if figures is None and not args.energy:
        return
    if figures is None:
        from ftaccel.synth.flow import synthesize
        from ftaccel.synth.sta import require_sta

        require_sta()
        generate, _files = _generator(cfg)
        out = Path(args.output) / "synth"
        gen = generate(cfg, out / "rtl")
        units = {"flow_pe_": "pe"} if cfg.flow != "none" else None
        print(f"energy: no power cached for {cfg.name()}: analysing it now (area, then "
              f"OpenSTA, default activity) in {out}", file=sys.stderr)
        figures = synthesize(gen.verilog, gen.top, out, units=units, timing=True, power=True)
    energy = energy_per_inference(figures, cycles=res.cycles, images=res.images)
    print(energy.line())
    path = write_json(Path(args.output) / "energy.json", energy.to_dict())
    print(f"wrote {path}")


def cmd_campaign(args) -> int:
    """Run or resume a fault campaign on a network (the logic is app/campaign.py)."""
    try:
        report = run_campaign(args.spec, args.output, workers=args.workers,
                              scheduler=args.scheduler, verify_rtl=args.verify_rtl,
                              sim=args.sim, progress=None, permutation=args.permutation,
                              command=getattr(args, "command_line", None))
    except (CampaignError, ModelError, DataError) as exc:
        raise CLIError(str(exc)) from None
    except OnnxMissing as exc:
        raise CLIError(str(exc), EXIT_TOOL) from None
    print(to_markdown(report))  # what campaign.md holds
    print(f"wrote {Path(args.output) / 'campaign.json'}, campaign.md, "
          f"{', '.join(report['trace'] + report['plots'])}")
    v = report.get("verify_rtl")
    if v and v["checked"] and v["agree"] != v["checked"]:
        return EXIT_MISMATCH
    return 0


def cmd_compare(args) -> int:
    """Compare protections on the same faults beside their costs (app/compare.py)."""
    from ftaccel.app.compare import compare  # (heavy: the synthesis flow)

    try:
        report = compare(args.spec, args.output, workers=args.workers,
                         scheduler=args.scheduler, synth=args.synth, progress=None,
                         command=getattr(args, "command_line", None))
    except (CampaignError, ModelError, DataError) as exc:
        raise CLIError(str(exc)) from None
    except OnnxMissing as exc:
        raise CLIError(str(exc), EXIT_TOOL) from None
    from ftaccel.app.compare import to_markdown as compare_markdown

    print(compare_markdown(report))
    print(f"wrote {Path(args.output) / 'compare.json'}, compare.md, pareto.png and the "
          f"campaign in {Path(args.output) / 'campaign'}")
    return 0


#: The application's input errors a network command reports as exit 2.
_CRITICAL_ERRORS = (critical.CriticalError, ModelError, DataError)


def cmd_nvf(args) -> int:
    """Neuron vulnerability factors of a network (the logic is app/critical.py)."""
    cfg = _config(args)
    try:
        critical.run_nvf(args.model, args.output, config=cfg, data=args.data, calib=args.calib,
                images=args.images, sign=not args.no_sign, seed=args.seed,
                pixels=None if args.all_pixels else args.pixels)
    except _CRITICAL_ERRORS as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote {Path(args.output) / 'nvf.json'} and {Path(args.output) / 'nvf.md'}")
    return 0


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a percentage") from None
    return value


def cmd_protect(args) -> int:
    """Protect a network's critical neurons (the logic is app/critical.py)."""
    cfg = _config(args)
    try:
        critical.run_protect(args.model, args.output, config=cfg, method=args.method,
                    threshold=args.nvf_threshold, nvf_file=args.nvf, voter=args.voter,
                    lcu_mode=args.lcu_mode, data=args.data, calib=args.calib,
                    images=args.images, seed=args.seed)
    except _CRITICAL_ERRORS as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote model.npz, protection.json, config.json and protect.md in {args.output}")
    return 0


def _rate(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a number") from None


def cmd_schedule(args) -> int:
    """HAS: a fault-aware permutation of the neurons (the logic is app/critical.py)."""
    cfg = _config(args)
    try:
        critical.run_schedule(args.model, args.output, config=cfg, profile=args.profile,
                     fr_max=args.fr_max, profile_seed=args.profile_seed, mode=args.mode,
                     layers=args.layers, method=args.method, generations=args.generations,
                     runs=args.runs, population=args.population, images=args.images,
                     test_images=args.test_images, draws=args.draws, seed=args.seed,
                     calib=args.calib, progress=None)
    except _CRITICAL_ERRORS as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote {Path(args.output) / 'permutation.json'}, schedule.md and its plot")
    return 0


def cmd_train(args) -> int:
    """Train or fine-tune a network for the hardware, or calibrate a device (app/train)."""
    from ftaccel.app.train import JaxMissing, jax_modules
    from ftaccel.app.train.options import TrainOptions

    cfg = _config(args)
    try:
        jax_modules()
    except JaxMissing as exc:
        raise CLIError(str(exc), EXIT_TOOL) from None
    opts = TrainOptions(
        methods=args.method, epochs=args.epochs, lr=args.lr, batch=args.batch, seed=args.seed,
        optimizer=args.optimizer, schedule=args.schedule, float_epochs=args.float_epochs,
        dtype=args.dtype,
        layers=args.layers, drop_rate=args.drop_rate, drop_kind=args.drop_kind,
        alpha=args.alpha, penalty=args.penalty, fault_model=args.fault_model,
        fault_rate=args.fault_rate, fault_targets=args.fault_targets,
        profile_mode=args.profile_mode, afd_shift=args.afd_shift, afd_gates=args.afd_gates,
        afd_mode=args.afd_mode, flow_layers=_flow_layers(args, cfg) or {},
        batchnorm=args.batchnorm, init=args.init, calib_images=args.calib_images)
    from ftaccel.app.train.trainer import run_train, to_markdown

    try:
        bmap = read_npy(args.bypass_map, "--bypass-map") if args.bypass_map else None
        rec = run_train(args.model, args.data, args.output, config=cfg, options=opts,
                        test=args.test, bypass_map=bmap, progress=None)
    except _CRITICAL_ERRORS as exc:
        raise CLIError(str(exc)) from None
    except OnnxMissing as exc:
        raise CLIError(str(exc), EXIT_TOOL) from None
    print(to_markdown(rec))
    print(f"wrote model.npz, float.npz, train.json and train.md in {args.output}")
    return 0


def _add_generate_command(sub) -> None:
    """The ``generate`` command and its options."""
    g = sub.add_parser("generate", help="write Verilog, RTLIL and config.json")
    _add_config_options(g)
    g.add_argument("-o", "--output", type=_path, required=True, help="output folder")
    g.set_defaults(func=cmd_generate)


def _add_matmul_command(sub) -> None:
    """The ``matmul`` command and its options."""
    m = sub.add_parser("matmul", help="compute C = A @ B by simulating the generated RTL")
    _add_config_options(m)
    m.add_argument("--a", type=_path, required=True, help="A.npy: M×K activations")
    m.add_argument("--b", type=_path, required=True, help="B.npy: K×N weights")
    m.add_argument("-o", "--output", type=_path, required=True,
                   help="C.npy (int64 accumulators)")
    m.add_argument("--bias", type=_path, help="bias.npy: N values added in the output stage")
    m.add_argument("--relu", action="store_true", help="ReLU in the output stage")
    m.add_argument("--shift", type=_integer, default=0, help="requantisation right shift")
    m.add_argument("--multiplier", metavar="M0[,M0…]",
                   help="fixed-point path (--requant multiplier): gemmlowp's multiplier M0 in "
                        "[2^30, 2^31), one for all output columns or one per column")
    m.add_argument("--requant-shift", metavar="N[,N…]",
                   help="fixed-point path: the right shift n (0 … 62) after the multiplier, "
                        "one or one per column")
    m.add_argument("--scale", metavar="M[,M…]",
                   help="fixed-point path: the real multiplier s_a·s_w/s_y in (0, 1), one or "
                        "one per column, turned into M0 and n (instead of --multiplier and "
                        "--requant-shift)")
    m.add_argument("--zero-point", type=_integer,
                   help="fixed-point path: the output zero point (default 0)")
    m.add_argument("--clamp", nargs=2, type=_integer, metavar=("LO", "HI"),
                   help="fixed-point path: clamp bounds (default the activation range; a fused "
                        "ReLU is LO = zero point)")
    m.add_argument("--q", type=_path, help="also save the requantised outputs here")
    m.add_argument("--json", type=_path,
                   help="write the machine-readable result here: cycles, checksum alarms per "
                        "result row and column, golden-model mismatches")
    m.add_argument("--sim", choices=["icarus", "verilator"],
                   help="simulator (default $SIM or icarus)")
    m.add_argument("--check", action="store_true",
                   help="exit 1 if the RTL differs from the golden model")
    m.add_argument("--fail-on-alarm", action="store_true",
                   help="exit 4 if a checksum raised its alarm (outputs are still written)")
    m.add_argument("--fault", help="inject ROW,COL,REG,BIT,MODE[,CYCLE]; REG weight|act|psum "
                                   "(registers), shadow (double-buffered WS/IS) or "
                                   "product|sum (MAC logic), "
                                   "MODE sa0|sa1|flip (e.g. 1,2,psum,7,flip,40)")
    m.add_argument("--corrected", type=_path,
                   help="LCU/TMR: write the corrected or voted result (read back from the "
                        "buffer) here")
    _add_unit_options(m, per_product=True)
    m.add_argument("--pack-group", type=_integer,
                   help="with --flow: pack B in groups of this size (default --flow-group; "
                        "smaller groups use a subset of the multiplexer inputs)")
    m.add_argument("--prune", action="store_true",
                   help="with --flow: prune B to complementary sparsity first (largest "
                        "magnitude of every group kept)")
    m.set_defaults(func=cmd_matmul)


def _add_verify_command(sub) -> None:
    """The ``verify`` command and its options."""
    v = sub.add_parser("verify", help="seeded random regression of one configuration")
    _add_config_options(v)
    v.add_argument("--seed", type=_integer, default=1)
    v.add_argument("--count", type=_integer, default=5)
    v.add_argument("--sim", choices=["icarus", "verilator"])
    v.add_argument("--json", type=_path, help="write every case and the verdict here")
    v.set_defaults(func=cmd_verify)


def _add_synth_command(sub) -> None:
    """The ``synth`` command and its options."""
    s = sub.add_parser("synth", help="synthesise with Yosys and report area")
    _add_config_options(s)
    s.add_argument("-o", "--output", type=_path, required=True, help="output folder")
    s.add_argument("--liberty", type=_path,
                   help="cell library (default: OSU 0.18 µm if installed)")
    s.add_argument("--flat", action="store_true", help="flatten before synthesis")
    s.add_argument("--timeout", type=_seconds, default=600, help="Yosys time limit in seconds")
    s.add_argument("--timing", action="store_true",
                   help="OpenSTA: critical paths, Fmax, each unit against the PE's MAC path")
    s.add_argument("--power", action="store_true",
                   help="OpenSTA: power per unit and module at --clock-mhz from --activity")
    s.add_argument("--activity", metavar="default|FILE|network:NAME|matmul",
                   help="switching activity for --power: default (a stated toggle rate, the "
                        "default), a VCD/FST of this design, network:digits-mlp / digits-cnn "
                        "(its first layer on 16 test images, simulated) or matmul (seeded "
                        "random operands, simulated)")
    s.add_argument("--clock-mhz", type=_mhz, help="clock of the power analysis (default 100)")
    s.add_argument("--no-wire-load", action="store_true",
                   help="time and power with pin loads only (no stated wire-load model)")
    s.add_argument("--sim", choices=["icarus", "verilator"],
                   help="simulator of --activity network/matmul (default $SIM or icarus)")
    s.set_defaults(func=cmd_synth)


def _add_demo_command(sub) -> None:
    """The ``demo`` command and its options."""
    d = sub.add_parser("demo", help="generate, verify, inject faults and synthesise (default: "
                                    "a protected 8×8 array)")
    _add_config_options(d)
    d.add_argument("-o", "--output", type=_path, default=Path("demo_out"))
    d.add_argument("--seed", type=_integer, default=1)
    d.add_argument("--sim", choices=["icarus", "verilator"])
    d.add_argument("--timeout", type=_seconds, default=600, help="Yosys time limit in seconds")
    d.add_argument("--compare", type=_path, metavar="SPEC",
                   help="last step: compare the protections of this compare spec into "
                        "OUT/compare (make demo: examples/compare-digits.toml)")
    d.set_defaults(func=cmd_demo)


def _add_infer_command(sub) -> None:
    """The ``infer`` command and its options."""
    n = sub.add_parser("infer", help="run a DNN (built-in, ONNX or model file) on the "
                                     "accelerator: accuracy, cycles, utilisation per layer")
    _add_config_options(n)
    _add_model_options(n, data="images: FILE.npz (images, labels), IMAGES,LABELS (MNIST IDX "
                               "files) or digits (default: the digits test split)",
                       calib="calibration images for an ONNX or float model (same formats "
                             "as --data; default: the --data images)")
    n.add_argument("--images", type=_integer, help="use only the first N images")
    n.add_argument("--engine", choices=["golden", "cycle", "rtl"], default="golden")
    n.add_argument("--sim", choices=["icarus", "verilator"],
                   help="simulator for --engine rtl (default $SIM or icarus)")
    _add_unit_options(n, per_product=False)
    n.add_argument("--permutation", type=_path,
                   help="permutation.json from 'rtlgen schedule': array column j computes "
                        "neuron perm[j] in the layers it names")
    n.add_argument("--protection", type=_path,
                   help="protection.json from 'rtlgen protect' (with --model its model.npz)")
    n.add_argument("--flow-layers", metavar="LAYER[:GROUP],…",
                   help="with --flow: layers run packed (complementary-sparse weights, group "
                        "default --flow-group), e.g. fc1:4,fc2:4; the others run dense on the "
                        "same array")
    n.add_argument("--flow-prune", nargs="?", const="train", choices=["train", "magnitude"],
                   help="with --flow-layers: prune those layers of the float model to "
                        "complementary sparsity before quantisation: train (default; the "
                        "sparsity trained in for --flow-epochs on the training images, ReLU "
                        "MLPs) or magnitude (one shot, the largest weight of every group)")
    n.add_argument("--flow-epochs", type=_integer, default=10,
                   help="epochs of --flow-prune train (default 10)")
    n.add_argument("--energy", action="store_true",
                   help="energy per inference: power × cycles / f from the configuration's "
                        "cached power ('rtlgen synth --power'), else analysed now (printed "
                        "whenever cached)")
    n.add_argument("-o", "--output", type=_path, required=True,
                   help="folder for infer.json and infer.md")
    n.set_defaults(func=cmd_infer)


def _add_campaign_command(sub) -> None:
    """The ``campaign`` command and its options."""
    c = sub.add_parser("campaign", help="fault campaign on a network: accuracy and outcome "
                                        "classes under faults for every protection")
    c.add_argument("spec", type=_path, help="campaign spec (TOML, see examples/)")
    c.add_argument("-o", "--output", type=_path, required=True,
                   help="campaign folder (created; the same command resumes it)")
    c.add_argument("--workers", type=_integer,
                   help="Dask worker processes on this machine (default: in this process when the "
                        "first chunk says the campaign is small, else every core; 0: run "
                        "in this process)")
    c.add_argument("--scheduler", help="address of a running Dask scheduler to use instead")
    c.add_argument("--verify-rtl", type=_integer, default=0, metavar="K",
                   help="replay K sampled faults (stuck-at, transient, profile trials) on the "
                        "RTL under every protection and report the agreement")
    c.add_argument("--sim", choices=["icarus", "verilator"],
                   help="simulator for --verify-rtl (default $SIM, else Verilator when "
                        "installed and Icarus would take longer than its builds, else icarus)")
    c.add_argument("--permutation", type=_path,
                   help="permutation.json from 'rtlgen schedule' (replaces the spec's "
                        "network.permutation): array column j computes neuron perm[j] in the "
                        "layers it names, for every protection on the plain model")
    c.set_defaults(func=cmd_campaign)


def _add_compare_command(sub) -> None:
    """The ``compare`` command and its options."""
    c = sub.add_parser("compare", help="every protection on the same faults: accuracy under "
                                       "faults beside area, power, Fmax, cycles and energy")
    c.add_argument("spec", type=_path, help="compare spec (TOML: a campaign spec and a "
                                            "[compare] table, see examples/compare-*.toml; "
                                            "[[models]] for several networks)")
    c.add_argument("-o", "--output", type=_path, required=True,
                   help="folder for compare.json, compare.md, pareto.png and the campaign "
                        "(the same command resumes it)")
    c.add_argument("--workers", type=_integer,
                   help="Dask worker processes on this machine (default: every core; 0: run "
                        "in this process)")
    c.add_argument("--scheduler", help="address of a running Dask scheduler to use instead")
    c.add_argument("--synth", choices=["ppa", "area", "none"],
                   help="replaces [compare] synth: ppa (area, timing, power; default), area, "
                        "or none (accuracy and cycles only)")
    c.set_defaults(func=cmd_compare)


def _add_nvf_command(sub) -> None:
    """The ``nvf`` command and its options."""
    nv = sub.add_parser("nvf", help="neuron vulnerability factor of every neuron "
                                    "(Ahmadilivani 2025 Algorithm 4.2) and the critical-neuron "
                                    "table")
    _add_config_options(nv)
    _add_model_options(nv, data=_TRAIN_DATA)
    nv.add_argument("--images", type=_integer, default=500,
                    help="use the first N images (default 500)")
    nv.add_argument("--pixels", type=_integer, default=1,
                    help="convolutions: output pixels drawn per image, channel and bit "
                         "(default 1)")
    nv.add_argument("--all-pixels", action="store_true", help="convolutions: every pixel")
    nv.add_argument("--no-sign", action="store_true", help="leave the sign bit out")
    nv.add_argument("--seed", type=_integer, default=0)
    nv.add_argument("-o", "--output", type=_path, required=True,
                    help="folder for nvf.json and nvf.md")
    nv.set_defaults(func=cmd_nvf)


def _add_protect_command(sub) -> None:
    """The ``protect`` command and its options."""
    pr = sub.add_parser("protect", help="protect the critical neurons (NVF ≥ threshold) by "
                                        "splitting + LCU or selective TMR, copies placed in "
                                        "distinct PE columns")
    _add_config_options(pr)
    _add_model_options(pr, data=_TRAIN_DATA)
    pr.add_argument("--method", required=True, help="lcu or tmr")
    pr.add_argument("--nvf-threshold", type=_percent, required=True, metavar="PERCENT",
                    help="protect the neurons with NVF ≥ this percentage (0 … 100)")
    pr.add_argument("--nvf", type=_path, help="nvf.json from 'rtlgen nvf' (default: analyse "
                                              "now on --data)")
    pr.add_argument("--voter", default="word",
                    help="TMR voter: word (default) or bitwise; written into config.json as "
                         "the top's on-chip voter (tmr)")
    pr.add_argument("--lcu-mode", default="halve",
                    help="LCU: halve (the thesis' split halves, default) or exact (copies "
                         "unhalved, AND only: bit-identical without faults)")
    pr.add_argument("--images", type=_integer, default=500, help="analysis images (500)")
    pr.add_argument("--seed", type=_integer, default=0)
    pr.add_argument("-o", "--output", type=_path, required=True,
                    help="folder for model.npz, protection.json, config.json, protect.md")
    pr.set_defaults(func=cmd_protect)


def _add_schedule_command(sub) -> None:
    """The ``schedule`` command and its options."""
    sc = sub.add_parser("schedule", help="HAS: permute each layer's neurons so the critical "
                                         "ones avoid the faulty PEs of a per-PE fault profile "
                                         "(the HAS report's GA)")
    _add_config_options(sc)
    _add_model_options(sc, data=None)
    sc.add_argument("--profile", type=_path,
                    help="PROFILE.json: R×C error rates (a list of rows, or {\"profile\": ...})")
    sc.add_argument("--fr-max", type=_rate,
                    help="instead of --profile: draw rates U(0, FR_MAX) (written to "
                         "profile.json)")
    sc.add_argument("--profile-seed", type=_integer, default=0)
    sc.add_argument("--mode", default="flip-to-1", help="flip-to-0, flip-to-1 or bitflip")
    sc.add_argument("--layers", help="product layers on the faulty array, names or indices "
                                     "(default: all, one chromosome each)")
    sc.add_argument("--method", default="ga",
                    help="ga (Shresthamali HAS) or nvf (NVF-guided placement)")
    sc.add_argument("--generations", type=_integer, default=100)
    sc.add_argument("--runs", type=_integer, default=3)
    sc.add_argument("--population", type=_integer, default=20)
    sc.add_argument("--images", type=_integer, default=200,
                    help="training images in the fitness (default 200)")
    sc.add_argument("--test-images", type=_integer, help="test images for before/after "
                                                         "(default: the whole test split)")
    sc.add_argument("--draws", type=_integer, default=10,
                    help="before/after: fresh error draws on the chip, and fresh chips "
                         "(default 10 each)")
    sc.add_argument("--seed", type=_integer, default=0)
    sc.add_argument("-o", "--output", type=_path, required=True,
                    help="folder for permutation.json and schedule.md")
    sc.set_defaults(func=cmd_schedule)

def _add_train_command(sub) -> None:
    """The ``train`` command and its options."""
    t = sub.add_parser("train", help="train or fine-tune a network for the hardware "
                                     "(int8-aware, JAX): median, hardware-aware dropconnect / "
                                     "dropout, outlier regularisation, fault-aware, sparse; "
                                     "or calibrate a device's bypass (Ozen 2023 §10.3.3)")
    _add_config_options(t)
    t.add_argument("--model", required=True, help="digits-mlp, digits-cnn, a zoo model, "
                   "FILE.onnx or a model FILE.npz (float, or quantised: its weights start)")
    t.add_argument("--data", default="digits", help="labelled training images: digits (the "
                   "training split), FILE.npz (images, labels) or IMAGES,LABELS (IDX)")
    t.add_argument("--test", help="labelled evaluation images (default: the digits test split "
                                  "for digits, else the training images)")
    t.add_argument("--method", default="qat", help="qat, afd, median, dropconnect (WS), dropout-in "
                   "(IS), dropout-out (OS), outlier, fault-aware, sparse (comma-separated to "
                   "combine), or calibrate (with --bypass-map; default qat)")
    t.add_argument("--epochs", type=_integer, default=10, help="epochs (1 … 10,000; default 10)")
    t.add_argument("--lr", type=_rate, default=1e-3, help="learning rate (0 … 1; default 1e-3)")
    t.add_argument("--batch", type=_integer, default=64, help="mini-batch size (default 64)")
    t.add_argument("--seed", type=_integer, default=0)
    t.add_argument("--optimizer", help="adam or sgd (default adam; sgd for sparse)")
    t.add_argument("--schedule", default="constant", help="constant or step (÷10 at 1/2, 3/4)")
    t.add_argument("--float-epochs", type=_integer, default=0,
                   help="epochs of float training before the int8-aware ones")
    t.add_argument("--dtype", default="float32",
                   help="float32 (default, fast) or float64 (exact) training steps")
    t.add_argument("--layers", help="product layers the median or the bypass masks act on "
                                    "(default: every one)")
    t.add_argument("--drop-rate", type=_rate, default=0.5,
                   help="drop probability of a PE (or variable), 1 − p (default 0.5)")
    t.add_argument("--drop-kind", default="hardware",
                   help="hardware (one R×C map per step, the mapping's masks) or random")
    t.add_argument("--alpha", type=_rate, default=1e-2, help="outlier penalty coefficient")
    t.add_argument("--penalty", default="max-magnitude", help="max-magnitude or max-squared")
    t.add_argument("--fault-model", default="bit_errors", help="bit_errors or pe_profile")
    t.add_argument("--fault-rate", type=_rate, default=1e-3,
                   help="bit-error rate, or FR_max of a per-PE profile")
    t.add_argument("--fault-targets", default="weights", help="weights and/or activations")
    t.add_argument("--profile-mode", default="bitflip", help="bitflip, flip-to-0 or flip-to-1")
    t.add_argument("--afd-shift", type=_integer, default=1,
                   help="afd: threshold γ = 2**shift while training (default 1)")
    t.add_argument("--afd-gates", type=_integer, default=1, help="afd: 1 (Eq. 8.1) or 2 (8.2)")
    t.add_argument("--afd-mode", default="drop", help="afd: drop or clip")
    t.add_argument("--flow-layers", metavar="LAYER[:GROUP],…",
                   help="sparse: layers made complementary-sparse (with --flow)")
    t.add_argument("--batchnorm", action="store_true",
                   help="a training-time BatchNorm after every product but the last (folded)")
    t.add_argument("--init", default="model", help="model (fine-tune) or random (He, seeded)")
    t.add_argument("--bypass-map", type=_path,
                   help="calibrate: R×C 0/1 .npy of the device's bypassed PEs (with --bypass)")
    t.add_argument("--calib-images", type=_integer, default=512,
                   help="training images the int8 scales are calibrated on (default 512)")
    t.add_argument("-o", "--output", type=_path, required=True,
                   help="folder for model.npz, float.npz, train.json and train.md")
    t.set_defaults(func=cmd_train, flow_prune=None)


def build_parser() -> argparse.ArgumentParser:
    """The ``rtlgen`` argument parser (every command and option)."""
    p = Parser(prog="rtlgen",
               description="Generate, verify and measure fault-tolerant systolic-array "
                           "accelerators.",
               epilog="Exit codes: 0 success, 1 mismatch, 2 bad input (nothing written), "
                      "3 tool missing or failed, 4 checksum alarm with --fail-on-alarm.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate_command(sub)
    _add_matmul_command(sub)
    _add_verify_command(sub)
    _add_synth_command(sub)
    _add_demo_command(sub)
    _add_infer_command(sub)
    _add_campaign_command(sub)
    _add_compare_command(sub)
    _add_nvf_command(sub)
    _add_protect_command(sub)
    _add_schedule_command(sub)
    _add_train_command(sub)
    return p


def _tool_errors() -> tuple[type[BaseException], ...]:
    from ftaccel.rtl_gen.emit import VerilogToolError  # (heavy: Amaranth, cocotb)
    from ftaccel.synth.sta import StaError
    from ftaccel.synth.yosys import YosysError
    from ftaccel.tb.runner import SimulationFailed, SimulatorNotFound

    return SimulatorNotFound, SimulationFailed, YosysError, VerilogToolError, StaError


def main(argv: list[str] | None = None) -> int:
    """Run ``rtlgen`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    with _signals_and_warnings():
        try:
            try:
                args = build_parser().parse_args(argv)
                # the command line as given, for the reports' provenance
                args.command_line = shlex.join(["rtlgen", *(sys.argv[1:] if argv is None
                                                            else argv)])
                return args.func(args)
            except SystemExit as exc:  # --help
                return exc.code if isinstance(exc.code, int) else 0
            except BaseException as exc:  # every error: one line and its exit code
                return _exit_code(exc)
        except KeyboardInterrupt as exc:  # a signal while the error was being reported
            return _exit_code(exc)


def _fail(message: str, code: int) -> int:
    print(f"rtlgen: error: {one_line(message)}", file=sys.stderr)
    return code


def _exit_code(exc: BaseException) -> int:
    """Report ``exc`` in one line on stderr and return its exit code (see the module doc)."""
    if isinstance(exc, CLIError):
        return _fail(str(exc), exc.code)
    if isinstance(exc, ConfigError | FileProblem):
        return _fail(str(exc), EXIT_INPUT)
    if isinstance(exc, _tool_errors()):
        return _fail(str(exc), EXIT_TOOL)
    if isinstance(exc, OSError):
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}", EXIT_INPUT)
    if isinstance(exc, MemoryError):
        return _fail("out of memory: the operands or the design are too large", EXIT_INPUT)
    if isinstance(exc, Terminated):
        print("rtlgen: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    if isinstance(exc, KeyboardInterrupt):
        print("rtlgen: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(exc, RecursionError):  # a structure nested beyond Python's stack
        return _fail("input nested too deeply to process", EXIT_INPUT)
    if not isinstance(exc, Exception) or os.environ.get("RTLGEN_TRACEBACK"):
        raise exc
    # a bug: say so in one line, not with a traceback
    return _fail(f"internal error ({type(exc).__name__}: {exc}); please report it "
                 "(RTLGEN_TRACEBACK=1 shows the traceback)", EXIT_INTERNAL)


@contextlib.contextmanager
def _signals_and_warnings():
    """SIGTERM raises :class:`Terminated` (so clean-up runs; exit 143); warnings are one line.

    A second SIGTERM during the clean-up ends the process at once (the default action).
    """
    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated()

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        print(f"rtlgen: warning: {one_line(f'{category.__name__}: {message}')}",
              file=sys.stderr)

    main_thread = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, terminate) if main_thread else None
    with warnings.catch_warnings():
        warnings.showwarning = one_line_warning
        try:
            yield
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
