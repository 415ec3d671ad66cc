"""``rtlgen``: generate, simulate, verify and synthesise fault-tolerant systolic arrays.

A thin layer: it parses the command line, checks every output path before any work, turns
text options into values, and dispatches to the room that owns the work —
:func:`rtl_gen.accelerator.generate`, :mod:`tb.product` (``matmul``), :mod:`tb.regression`
(``verify``), :func:`synth.flow.synthesize` (``synth``), :mod:`ftaccel.app.demo` (``demo``),
:mod:`app.critical` (``nvf``, ``protect``, ``schedule``), :mod:`app.train` (``train``).
Every command writes through :class:`ftaccel.files.OutputSet`: all or nothing.

Exit codes: 0 success; 1 a check or verification found a mismatch; 2 invalid option,
configuration, operand or path (one line on stderr, nothing written); 3 a tool is missing or
failed (simulator, Yosys), the log named; 4 ``--fail-on-alarm`` and a checksum raised its
alarm (1 wins when both apply); 70 an internal error (a bug: one line, ``RTLGEN_TRACEBACK=1``
shows the traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from ftaccel.config import AcceleratorConfig
from ftaccel.errors import ConfigError, one_line, shown

EXIT_MISMATCH, EXIT_INPUT, EXIT_TOOL, EXIT_ALARM, EXIT_INTERNAL = 1, 2, 3, 4, 70

#: Configuration fields that have a command-line option of the same name.
CONFIG_OPTIONS = ("rows", "cols", "dataflow", "a_width", "w_width", "acc_width", "max_k",
                  "fault_hooks", "output_stage", "bypass", "afd", "median", "median_variant",
                  "checksum", "temporal_batch_bits", "temporal_mode", "lcu", "lcu_depth",
                  "lcu_max_pairs", "lcu_mask", "flow", "flow_group", "tmr", "tmr_max_triples",
                  "double_buffer")


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
    g = p.add_argument_group("configuration (a --config file, overridden by any option given)")
    g.add_argument("--config", type=_path, help="JSON configuration (as written by generate)")
    g.add_argument("--rows", type=_integer, help="array rows R (default 8)")
    g.add_argument("--cols", type=_integer, help="array columns C (default 8)")
    g.add_argument("--dataflow", help="ws, is or os (default ws)")
    g.add_argument("--a-width", type=_integer, help="activation width in bits (default 8)")
    g.add_argument("--w-width", type=_integer, help="weight width in bits (default 8)")
    g.add_argument("--acc-width", type=_integer, help="accumulator width (default: derived)")
    g.add_argument("--max-k", type=_integer,
                   help="largest reduction length the derived accumulator holds (default 1024)")
    g.add_argument("--fault-hooks", action="store_true", default=None,
                   help="add run-time fault saboteurs to every PE register")
    g.add_argument("--no-output-stage", dest="output_stage", action="store_false", default=None,
                   help="omit bias/ReLU/requantisation")
    g.add_argument("--bypass", action="store_true", default=None,
                   help="PE bypass with a run-time R×C map (SPEC §6)")
    g.add_argument("--afd", action="store_true", default=None,
                   help="anomaly suppression of the streamed activations (WS, SPEC §3)")
    g.add_argument("--median", type=_integer, help="median filter window 3 or 5 (WS, SPEC §4)")
    g.add_argument("--median-variant", help="plain or shared comparators")
    g.add_argument("--checksum",
                   help="none, spatial, temporal or both (Sanity-Check, WS, SPEC §2)")
    g.add_argument("--temporal-batch-bits", type=_integer,
                   help="width of the run-time temporal batch size N (default 4: N ≤ 15)")
    g.add_argument("--temporal-mode",
                   help="residue (sanity vector wrapped to a_width bits, check mod 2^a) or "
                        "exact (streamed path widened, check mod 2^acc; default residue)")
    g.add_argument("--lcu", action="store_true", default=None,
                   help="output buffer + LCU correction controller + split lanes (SPEC §5)")
    g.add_argument("--lcu-depth", type=_integer, help="output-buffer rows of C words (default 64)")
    g.add_argument("--lcu-max-pairs", type=_integer, help="pairs per correction run (default 16)")
    g.add_argument("--lcu-mask", type=_integer,
                   help="bits the LCU keeps (a_width bits, e.g. 0xBF; default: all but bit "
                        "a_width − 2)")
    g.add_argument("--tmr", help="selective-TMR voting controller on the output buffer: none, "
                                 "word (001 L2126) or bitwise (SPEC §5; buffer rows: "
                                 "--lcu-depth)")
    g.add_argument("--tmr-max-triples", type=_integer,
                   help="word triples per voting run (default 16)")
    g.add_argument("--single-buffer", dest="double_buffer", action="store_false", default=None,
                   help="WS/IS: the single-buffered PE (tiles load while the array idles) "
                        "instead of the default shadow registers (issue 18)")
    g.add_argument("--flow", help="flow-controlling MACs for complementary-sparse layers: none, "
                                  "shortened, superposition or twodim (WS, SPEC §8)")
    g.add_argument("--flow-group", type=_integer,
                   help="group size the flow multiplexers are built for (2 … 256; twodim 4, 16, "
                        "64, 256)")


def _generator(cfg: AcceleratorConfig):
    """The generator of ``cfg``'s top and the files it writes.

    The composed accelerator, or the flow-controlling array, which is a top of its own
    (:mod:`rtl_gen.flow`).
    """
    if cfg.flow != "none":
        from ftaccel.rtl_gen.flow import FLOW_GENERATED_FILES, generate_flow

        return generate_flow, FLOW_GENERATED_FILES
    from ftaccel.rtl_gen.accelerator import GENERATED_FILES, generate

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


def _split_cols(text: str, n_out: int):
    import numpy as np

    cols = _int_list(text, "--split-cols")
    bad = [c for c in cols if not 0 <= c < n_out]
    if bad:
        raise CLIError(f"--split-cols: column {bad[0]} is not in 0 … {n_out - 1}")
    split = np.zeros(n_out, dtype=bool)
    split[cols] = True
    return split


def _column_groups(text: str, n_out: int, option: str, k: int, entry: str, *,
                   distinct: bool = False):
    """Comma-separated groups of ``k`` colon-separated output columns as a ``[n, k]`` array.

    Every column must be in ``0 … n_out − 1``; with ``distinct`` no group may name a column
    twice.  ``entry`` names one group in the error message ("pair", "triple").
    """
    import numpy as np

    form = ":".join(f"c{i + 1}" for i in range(k))
    groups = []
    for item in text.split(","):
        cols = _int_list(item, option, sep=":")
        if len(cols) != k:
            raise CLIError(f"{option}: {shown(item)} is not a {entry} '{form}'")
        bad = [c for c in cols if not 0 <= c < n_out]
        if bad:
            raise CLIError(f"{option}: column {bad[0]} is not in 0 … {n_out - 1}")
        if distinct and len(set(cols)) != k:
            twice = next(c for c in cols if cols.count(c) > 1)
            raise CLIError(f"{option}: {shown(item)} names column {twice} twice (a {entry} "
                           f"needs {k} different columns)")
        groups.append(cols)
    return np.asarray(groups, dtype=np.int64)


def _lcu_pairs(text: str, n_out: int):
    return _column_groups(text, n_out, "--lcu-pairs", 2, "pair")


def _tmr_triples(text: str, n_out: int):
    return _column_groups(text, n_out, "--tmr-triples", 3, "triple", distinct=True)


def _bias_error(text: str) -> tuple[int, int, int | None]:
    parts = _int_list(text, "--bias-error")
    if len(parts) not in (2, 3):
        raise CLIError(f"--bias-error: {shown(text)} is not COL,BIT or COL,BIT,ROW")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _fault(text: str):
    from ftaccel.golden.faults import Fault

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
    from ftaccel.files import OutputSet

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
    from ftaccel.files import read_npy
    from ftaccel.tb.product import RunOptions

    n_out = B.shape[1] if getattr(B, "ndim", 0) == 2 else 0
    opts = RunOptions(relu=args.relu, shift=args.shift)
    if args.bias is not None:
        opts.bias = read_npy(args.bias, "--bias")
    if args.fault is not None:
        opts.fault = _fault(args.fault)
    if args.bypass_map is not None:
        opts.bypass_map = read_npy(args.bypass_map, "--bypass-map")
    if cfg.afd or args.afd_off or args.afd_shift is not None or args.afd_gates is not None \
            or args.afd_mode is not None:
        opts.afd = {"shift": 1 if args.afd_shift is None else args.afd_shift,
                    "gates": 1 if args.afd_gates is None else args.afd_gates,
                    "mode": 1 if args.afd_mode == "clip" else 0,
                    "enable": 0 if args.afd_off else 1}
    if args.median_off:
        if not cfg.median:
            raise CLIError("--median-off needs a configuration with --median 3|5")
        opts.median_enable = False
    if cfg.tmr != "none":  # the voter and the LCU share the output buffer: one or the other
        for name in ("split_cols", "lcu_pairs"):
            if getattr(args, name) is not None:
                raise CLIError(f"--{name.replace('_', '-')} is not available with --tmr "
                               f"{cfg.tmr} (the voter takes --tmr-triples)")
    elif args.tmr_triples is not None:
        raise CLIError("--tmr-triples needs a configuration with --tmr word|bitwise")
    if args.split_cols is not None:
        opts.split = _split_cols(args.split_cols, n_out)
    if args.lcu_pairs is not None:
        opts.lcu_pairs = _lcu_pairs(args.lcu_pairs, n_out)
        if opts.split is None and cfg.lcu:
            import numpy as np

            opts.split = np.zeros(n_out, dtype=bool)
    if args.tmr_triples is not None:
        opts.tmr_triples = _tmr_triples(args.tmr_triples, n_out)
    opts.temporal_batch = args.temporal_batch
    opts.checksum_threshold = args.checksum_threshold
    opts.temporal_threshold = args.temporal_threshold
    if args.bias_error is not None:
        opts.bias_error = _bias_error(args.bias_error)
    return opts


def cmd_matmul(args) -> int:
    """``rtlgen matmul``: one product on the RTL (:mod:`tb.product`), outputs all or nothing."""
    from ftaccel.files import OutputSet, read_npy
    from ftaccel.golden.results import alarm_lines
    from ftaccel.tb.product import prepare, run_product

    cfg = _config(args)
    if cfg.flow != "none":
        return cmd_matmul_flow(args, cfg)
    if args.pack_group is not None or args.prune:
        raise CLIError("--pack-group/--prune need a configuration with --flow")
    with OutputSet() as outs:
        _claim_outputs(outs, args, ("output", "q", "corrected", "json"))
        if args.q is not None and not cfg.output_stage:
            raise CLIError("--q needs the output stage (drop --no-output-stage)")
        if args.corrected is not None and not cfg.lcu and cfg.tmr == "none":
            raise CLIError("--corrected needs a configuration with --lcu or --tmr")
        if args.fault is not None and not cfg.fault_hooks:
            cfg = cfg.replace(fault_hooks=True)
            print("note: --fault given: generating with fault hooks")
        A = read_npy(args.a, "--a")
        B = read_npy(args.b, "--b")
        opts = _run_options(cfg, args, A, B)
        program = prepare(cfg, A, B, opts)  # every check, before any simulation
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
    if cfg.lcu:
        rec = res.record()["lcu"]
        print(f"LCU: {rec['pairs']} pairs corrected in {rec['correction_runs']} run(s); "
              f"{rec['words_changed']} words changed by the correction")
    if cfg.tmr != "none":
        rec = res.record()["tmr"]
        print(f"TMR ({cfg.tmr} voter): {rec['triples']} triples voted in {rec['voting_runs']} "
              f"run(s); {rec['words_changed']} words changed by the vote")
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
    """``matmul`` on the flow-controlling array: B (sparse) is packed there (000 §12.5.2)."""
    from ftaccel.files import OutputSet, read_npy
    from ftaccel.tb.flow import flow_product
    from ftaccel.tb.product import check_accumulator, check_operands

    for opt in ("fault", "bypass_map", "split_cols", "lcu_pairs", "tmr_triples", "corrected",
                "temporal_batch", "json", "bias_error", "checksum_threshold",
                "temporal_threshold"):
        if getattr(args, opt) is not None:
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
    from ftaccel.files import OutputSet
    from ftaccel.tb.regression import regression

    cfg = _config(args)
    if cfg.flow != "none":
        if args.json is not None:
            raise CLIError(f"--json is not available with --flow {cfg.flow}")
        from ftaccel.tb.flow import verify_flow

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
    from ftaccel.files import check_folder, check_target

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
    """``rtlgen synth``: generate, synthesise, print the headline areas."""
    from ftaccel.files import OutputSet, check_input
    from ftaccel.synth.flow import synthesize
    from ftaccel.synth.summary import headline

    cfg = _config(args)
    generate, files = _generator(cfg)
    # the flow-controlling PE is the PE of its array: overheads are measured on it
    units = {"flow_pe_": "pe"} if cfg.flow != "none" else None
    out = Path(args.output)
    if args.liberty is not None:
        check_input(args.liberty, "--liberty")
    with OutputSet() as outs:
        _check_folders(outs, out, _synth_files(files))
        gen = generate(cfg, out / "rtl")
        t0 = time.perf_counter()
        report = synthesize(gen.verilog, gen.top, out, liberty=args.liberty, flat=args.flat,
                            timeout_s=args.timeout, units=units)
    print(f"synthesised {cfg.name()} in {time.perf_counter() - t0:.1f} s:")
    for line in headline(report):
        print("  " + line)
    print(f"full report: {out / 'area.md'} (tables), {out / 'area.json'}, {out / 'area.png'}")
    return 0


def cmd_demo(args) -> int:
    """``rtlgen demo``: :func:`ftaccel.app.demo.run_demo` on the demo configuration."""
    from ftaccel.app.demo import DEMO_DEFAULTS, run_demo
    from ftaccel.files import OutputSet

    cfg = _config(args, defaults=DEMO_DEFAULTS)
    if cfg.flow != "none":
        raise CLIError("demo does not take --flow; try matmul --flow … --check")
    if not 0 <= args.seed < 1 << 63:
        raise CLIError(f"--seed {args.seed}: must be 0 … 2**63 − 1")
    out = Path(args.output)
    with OutputSet() as outs:
        from ftaccel.rtl_gen.accelerator import GENERATED_FILES

        _check_folders(outs, out, {"": ("demo.json",), "rtl": GENERATED_FILES,
                                   **_synth_files(GENERATED_FILES, "synth"), "campaign": ()})
        report = run_demo(cfg, out, seed=args.seed, sim=args.sim, timeout=args.timeout)
    return 0 if report["passed"] else EXIT_MISMATCH


def _layer_options(args):
    """The per-layer options of ``--permutation`` / ``--protection`` (checked on the model)."""
    from functools import partial

    from ftaccel.app import critical

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
    from ftaccel.app.network import infer, unit_options
    from ftaccel.app.onnx_import import OnnxMissing
    from ftaccel.app.train import JaxMissing
    from ftaccel.files import read_npy

    cfg = _config(args)
    try:
        bmap = read_npy(args.bypass_map, "--bypass-map") if args.bypass_map else None
        units = unit_options(cfg, afd_shift=args.afd_shift, afd_gates=args.afd_gates,
                             afd_mode=args.afd_mode, bypass_map=bmap,
                             temporal_batch=args.temporal_batch)
        res = infer(args.model, args.output, config=cfg, data=args.data, calib=args.calib,
                    images=args.images, engine=args.engine, sim=args.sim, units=units,
                    progress=None, layer_options=_layer_options(args),
                    flow_layers=_flow_layers(args, cfg), flow_prune=args.flow_prune,
                    flow_epochs=args.flow_epochs)
    except _critical_errors() as exc:
        raise CLIError(str(exc)) from None
    except (OnnxMissing, JaxMissing) as exc:  # --flow-prune train needs the train extra
        raise CLIError(str(exc), EXIT_TOOL) from None
    print(res.to_markdown())
    print(f"wrote {Path(args.output) / 'infer.json'} and {Path(args.output) / 'infer.md'}")
    return 0


def cmd_campaign(args) -> int:
    """Run or resume a fault campaign on a network (the logic is app/campaign.py)."""
    from ftaccel.app.campaign import CampaignError, run_campaign
    from ftaccel.app.datasets import DataError
    from ftaccel.app.onnx_import import OnnxMissing
    from ftaccel.golden.network import ModelError

    if args.workers is not None and args.workers < 0:
        raise CLIError(f"--workers {args.workers}: must be 0 (this process) or more")
    if args.verify_rtl < 0:
        raise CLIError(f"--verify-rtl {args.verify_rtl}: must be 0 or more")
    try:
        report = run_campaign(args.spec, args.output, workers=args.workers,
                              scheduler=args.scheduler, verify_rtl=args.verify_rtl,
                              sim=args.sim, progress=None, permutation=args.permutation)
    except (CampaignError, ModelError, DataError) as exc:
        raise CLIError(str(exc)) from None
    except OnnxMissing as exc:
        raise CLIError(str(exc), EXIT_TOOL) from None
    print((Path(args.output) / "campaign.md").read_text())
    print(f"wrote {Path(args.output) / 'campaign.json'}, campaign.md, "
          f"{', '.join(report['trace'] + report['plots'])}")
    v = report.get("verify_rtl")
    if v and v["checked"] and v["agree"] != v["checked"]:
        return EXIT_MISMATCH
    return 0


def _critical_errors():
    from ftaccel.app.critical import CriticalError
    from ftaccel.app.datasets import DataError
    from ftaccel.golden.network import ModelError

    return CriticalError, ModelError, DataError


def cmd_nvf(args) -> int:
    """Neuron vulnerability factors of a network (the logic is app/critical.py)."""
    from ftaccel.app.critical import run_nvf

    cfg = _config(args)
    try:
        run_nvf(args.model, args.output, config=cfg, data=args.data, calib=args.calib,
                images=args.images, sign=not args.no_sign, seed=args.seed,
                pixels=None if args.all_pixels else args.pixels)
    except _critical_errors() as exc:
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
    from ftaccel.app.critical import run_protect

    cfg = _config(args)
    try:
        run_protect(args.model, args.output, config=cfg, method=args.method,
                    threshold=args.nvf_threshold, nvf_file=args.nvf, voter=args.voter,
                    lcu_mode=args.lcu_mode, data=args.data, calib=args.calib,
                    images=args.images, seed=args.seed)
    except _critical_errors() as exc:
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
    from ftaccel.app.critical import run_schedule

    cfg = _config(args)
    try:
        run_schedule(args.model, args.output, config=cfg, profile=args.profile,
                     fr_max=args.fr_max, profile_seed=args.profile_seed, mode=args.mode,
                     layers=args.layers, method=args.method, generations=args.generations,
                     runs=args.runs, population=args.population, images=args.images,
                     test_images=args.test_images, seed=args.seed, calib=args.calib)
    except _critical_errors() as exc:
        raise CLIError(str(exc)) from None
    print(f"wrote {Path(args.output) / 'permutation.json'} and schedule.md")
    return 0


def cmd_train(args) -> int:
    """Train or fine-tune a network for the hardware, or calibrate a device (app/train)."""
    from ftaccel.app.onnx_import import OnnxMissing
    from ftaccel.app.train import JaxMissing, jax_modules
    from ftaccel.app.train.options import TrainOptions
    from ftaccel.files import read_npy

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
    except _critical_errors() as exc:
        raise CLIError(str(exc)) from None
    except OnnxMissing as exc:
        raise CLIError(str(exc), EXIT_TOOL) from None
    print(to_markdown(rec))
    print(f"wrote model.npz, float.npz, train.json and train.md in {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``rtlgen`` argument parser (every command and option)."""
    p = Parser(prog="rtlgen",
               description="Generate, verify and measure fault-tolerant systolic-array "
                           "accelerators.",
               epilog="Exit codes: 0 success, 1 mismatch, 2 bad input (nothing written), "
                      "3 tool missing or failed, 4 checksum alarm with --fail-on-alarm.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="write Verilog, RTLIL and config.json")
    _add_config_options(g)
    g.add_argument("-o", "--output", type=_path, required=True, help="output folder")
    g.set_defaults(func=cmd_generate)

    m = sub.add_parser("matmul", help="compute C = A @ B by simulating the generated RTL")
    _add_config_options(m)
    m.add_argument("--a", type=_path, required=True, help="A.npy: M×K activations")
    m.add_argument("--b", type=_path, required=True, help="B.npy: K×N weights")
    m.add_argument("-o", "--output", type=_path, required=True,
                   help="C.npy (int64 accumulators)")
    m.add_argument("--bias", type=_path, help="bias.npy: N values added in the output stage")
    m.add_argument("--relu", action="store_true", help="ReLU in the output stage")
    m.add_argument("--shift", type=_integer, default=0, help="requantisation right shift")
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
    m.add_argument("--bypass-map", type=_path,
                   help="R×C 0/1 .npy: PEs to bypass (with --bypass)")
    m.add_argument("--split-cols", help="LCU: output columns that are split copies, e.g. 1,3,4,5")
    m.add_argument("--lcu-pairs", help="LCU: column pairs to correct in every row, e.g. 1:4,3:5")
    m.add_argument("--tmr-triples",
                   help="TMR: column triples (a neuron and its two copies) voted in every row, "
                        "e.g. 0:4:5,1:6:7")
    m.add_argument("--corrected", type=_path,
                   help="LCU/TMR: write the corrected or voted result (read back from the "
                        "buffer) here")
    m.add_argument("--temporal-batch", type=_integer,
                   help="temporal checksum batch N (default the largest, 2^bits − 1)")
    m.add_argument("--checksum-threshold", type=_integer,
                   help="spatial checker threshold: a vector fails when |syndrome| exceeds it "
                        "(default 0, exact)")
    m.add_argument("--temporal-threshold", type=_integer,
                   help="temporal checker threshold (default 0, exact)")
    m.add_argument("--bias-error",
                   help="flip bit BIT of the bias word of column COL on its way into the "
                        "array: COL,BIT (the stored word, every row) or COL,BIT,ROW (one "
                        "row); WS with a checksum (Table 6.1's bias row)")
    m.add_argument("--afd-shift", type=_integer, help="AFD threshold γ = 2**shift (default 1)")
    m.add_argument("--afd-gates", type=_integer, help="AFD gates: 1 (Eq. 8.1, default) or 2")
    m.add_argument("--afd-mode", choices=["drop", "clip"], help="AFD action (default drop)")
    m.add_argument("--afd-off", action="store_true",
                   help="switch anomaly suppression off at run time")
    m.add_argument("--median-off", action="store_true",
                   help="switch the median filter off at run time")
    m.add_argument("--pack-group", type=_integer,
                   help="with --flow: pack B in groups of this size (default --flow-group; "
                        "smaller groups use a subset of the multiplexer inputs)")
    m.add_argument("--prune", action="store_true",
                   help="with --flow: prune B to complementary sparsity first (largest "
                        "magnitude of every group kept)")
    m.set_defaults(func=cmd_matmul)

    v = sub.add_parser("verify", help="seeded random regression of one configuration")
    _add_config_options(v)
    v.add_argument("--seed", type=_integer, default=1)
    v.add_argument("--count", type=_integer, default=5)
    v.add_argument("--sim", choices=["icarus", "verilator"])
    v.add_argument("--json", type=_path, help="write every case and the verdict here")
    v.set_defaults(func=cmd_verify)

    s = sub.add_parser("synth", help="synthesise with Yosys and report area")
    _add_config_options(s)
    s.add_argument("-o", "--output", type=_path, required=True, help="output folder")
    s.add_argument("--liberty", type=_path,
                   help="cell library (default: OSU 0.18 µm if installed)")
    s.add_argument("--flat", action="store_true", help="flatten before synthesis")
    s.add_argument("--timeout", type=_seconds, default=600, help="Yosys time limit in seconds")
    s.set_defaults(func=cmd_synth)

    d = sub.add_parser("demo", help="generate, verify, inject faults and synthesise (default: "
                                    "a protected 8×8 array)")
    _add_config_options(d)
    d.add_argument("-o", "--output", type=_path, default=Path("demo_out"))
    d.add_argument("--seed", type=_integer, default=1)
    d.add_argument("--sim", choices=["icarus", "verilator"])
    d.add_argument("--timeout", type=_seconds, default=600, help="Yosys time limit in seconds")
    d.set_defaults(func=cmd_demo)

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
    n.add_argument("--bypass-map", type=_path, help="R×C 0/1 .npy: PEs to bypass (with --bypass)")
    n.add_argument("--temporal-batch", type=_integer,
                   help="temporal checksum batch N (default the largest, 2^bits − 1)")
    n.add_argument("--afd-shift", type=_integer, default=1, help="AFD threshold γ = 2**shift")
    n.add_argument("--afd-gates", type=_integer, default=1,
                   help="AFD gates: 1 (Eq. 8.1) or 2 (8.2)")
    n.add_argument("--afd-mode", choices=["drop", "clip"], default="drop")
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
    n.add_argument("-o", "--output", type=_path, required=True,
                   help="folder for infer.json and infer.md")
    n.set_defaults(func=cmd_infer)

    c = sub.add_parser("campaign", help="fault campaign on a network: accuracy and outcome "
                                        "classes under faults for every protection")
    c.add_argument("spec", type=_path, help="campaign spec (TOML, see examples/)")
    c.add_argument("-o", "--output", type=_path, required=True,
                   help="campaign folder (created; the same command resumes it)")
    c.add_argument("--workers", type=_integer,
                   help="Dask worker processes on this machine (default: every core; 0: run "
                        "in this process)")
    c.add_argument("--scheduler", help="address of a running Dask scheduler to use instead")
    c.add_argument("--verify-rtl", type=_integer, default=0, metavar="K",
                   help="re-run K sampled faults on the RTL and report the agreement")
    c.add_argument("--sim", choices=["icarus", "verilator"],
                   help="simulator for --verify-rtl (default $SIM or icarus)")
    c.add_argument("--permutation", type=_path,
                   help="permutation.json from 'rtlgen schedule' (replaces the spec's "
                        "network.permutation): array column j computes neuron perm[j] in the "
                        "layers it names, for every protection on the plain model")
    c.set_defaults(func=cmd_campaign)

    nv = sub.add_parser("nvf", help="neuron vulnerability factor of every neuron (001 "
                                    "Algorithm 4.2) and the critical-neuron table")
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

    sc = sub.add_parser("schedule", help="HAS: permute each layer's neurons so the critical "
                                         "ones avoid the faulty PEs of a per-PE fault profile "
                                         "(003's GA)")
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
    sc.add_argument("--method", default="ga", help="ga (003) or nvf (NVF-guided placement)")
    sc.add_argument("--generations", type=_integer, default=100)
    sc.add_argument("--runs", type=_integer, default=3)
    sc.add_argument("--population", type=_integer, default=20)
    sc.add_argument("--images", type=_integer, default=200,
                    help="training images in the fitness (default 200)")
    sc.add_argument("--test-images", type=_integer, help="test images for before/after")
    sc.add_argument("--seed", type=_integer, default=0)
    sc.add_argument("-o", "--output", type=_path, required=True,
                    help="folder for permutation.json and schedule.md")
    sc.set_defaults(func=cmd_schedule)

    t = sub.add_parser("train", help="train or fine-tune a network for the hardware "
                                     "(int8-aware, JAX): median, hardware-aware dropconnect / "
                                     "dropout, outlier regularisation, fault-aware, sparse; "
                                     "or calibrate a device's bypass (000 §10.3.3)")
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
    return p



def _tool_errors() -> tuple[type[BaseException], ...]:
    from ftaccel.rtl_gen.emit import VerilogToolError
    from ftaccel.synth.yosys import YosysError
    from ftaccel.tb.runner import SimulationFailed, SimulatorNotFound

    return SimulatorNotFound, SimulationFailed, YosysError, VerilogToolError


def main(argv: list[str] | None = None) -> int:
    """Run ``rtlgen`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    from ftaccel.files import FileProblem

    def fail(message: str, code: int) -> int:
        print(f"rtlgen: error: {one_line(message)}", file=sys.stderr)
        return code

    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except CLIError as exc:
        return fail(str(exc), exc.code)
    except (ConfigError, FileProblem) as exc:
        return fail(str(exc), EXIT_INPUT)
    except _tool_errors() as exc:
        return fail(str(exc), EXIT_TOOL)
    except OSError as exc:
        return fail(f"{exc.strerror or exc}: {exc.filename or ''}", EXIT_INPUT)
    except MemoryError:
        return fail("out of memory: the operands or the design are too large", EXIT_INPUT)
    except KeyboardInterrupt:
        print("rtlgen: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, not with a traceback
        if os.environ.get("RTLGEN_TRACEBACK"):
            raise
        return fail(f"internal error ({type(exc).__name__}: {exc}); please report it "
                    "(RTLGEN_TRACEBACK=1 shows the traceback)", EXIT_INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
