"""Configuration of a generated accelerator: pure, frozen, validated dataclasses.

This module imports nothing from Amaranth (and nothing else of the project), so the golden
models, the CLI and the tests can build and check configurations without touching hardware
generation.  Every invalid value raises :class:`ConfigError`, which names the field, the value
and what would be valid; nothing invalid reaches Amaranth or Yosys.

Numbers follow SPEC §0: data are two's-complement signed integers; activations are
``a_width`` bits, weights ``w_width`` bits; the accumulator is ``a_width + w_width +
ceil(log2(max_k))`` bits unless ``acc_width`` is given explicitly, where ``max_k`` is the largest
reduction length (the ``K`` of an ``M×K @ K×N`` product, summed over all tiles) that the
configuration promises never to overflow.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError, check_bool, check_choice, check_int, is_int

__all__ = [
    "CHECKSUM_MODES",
    "TEMPORAL_MODES",
    "MEDIAN_VARIANTS",
    "AcceleratorConfig",
    "DATAFLOWS",
    "FAULT_REGISTERS",
    "FAULT_MODES",
    "FAULT_CONTROLS",
    "derived_acc_width",
    "FLOW_MODES",
    "FLOW_GROUPS",
    "flow_lanes",
    "TMR_VOTERS",
    "REQUANT_MODES",
    "REQUANT_STAGES",
    "REQUANT_MAX_ACC",
]

#: Dataflows of SPEC §1: weight-, input- and output-stationary.
DATAFLOWS = ("ws", "is", "os")
#: PE fault sites of the fault hooks, in the encoding of the ``fault_reg`` port: the weight,
#: activation and partial-sum registers, and the MAC logic: the multiplier's ``product`` and
#: the adder's ``sum`` (the logic PE bypass isolates, SPEC §6).
FAULT_REGISTERS = ("weight", "act", "psum", "product", "sum", "shadow")
#: Fault kinds, in the encoding of the ``fault_mode`` port.
FAULT_MODES = ("sa0", "sa1", "flip")
#: The run-time controls of the fault hooks and their widths in bits: the one list the RTL
#: (:class:`rtl_gen.fault.FaultControlSignature`), the driver program and
#: :meth:`golden.faults.Fault.controls` are built from.  ``reg`` and ``mode`` index
#: :data:`FAULT_REGISTERS` and :data:`FAULT_MODES`; ``bit`` addresses registers of up to 64
#: bits; ``cycle`` counts cycles from reset.
FAULT_CONTROLS = {"enable": 1, "row": 8, "col": 8, "reg": 3, "bit": 6, "mode": 2, "cycle": 32}
#: Median array variants (SPEC §4): one unit per window, or comparators shared (Fig. 8.12).
MEDIAN_VARIANTS = ("plain", "shared")
#: Selective-TMR voter of the composed top (SPEC §5 baselines): ``"word"`` (001 L2126: the
#: word two copies agree on, the signed minimum when all three differ), ``"bitwise"`` (bit
#: majority), ``"none"``: not built.
TMR_VOTERS = ("none", "word", "bitwise")
#: Output-stage requantisation paths (SPEC §12, issue 23): ``"shift"``, the power-of-two
#: rounding shift only; ``"multiplier"`` adds gemmlowp's fixed-point multiplier beside it
#: (:mod:`rtl_gen.output_stage`), selected at run time.
REQUANT_MODES = ("shift", "multiplier")
#: Extra pipeline stages of the fixed-point path (product, high word, rounding shift).
REQUANT_STAGES = 3
#: Widest accumulator the fixed-point path takes: gemmlowp's int32.
REQUANT_MAX_ACC = 32
#: Sanity-Check options of the composed top (SPEC §2): which checksums are built.
CHECKSUM_MODES = ("none", "spatial", "temporal", "both")
#: How the temporal checksum's sanity input vector crosses the array (SPEC §2, 000 L1261):
#: ``"residue"`` wraps it to the activation width (the PEs are unchanged; the check holds
#: modulo 2**a_width), ``"exact"`` widens the streamed path by ``temporal_batch_bits`` bits
#: (every PE's multiplier grows; the check holds modulo 2**acc_bits).
TEMPORAL_MODES = ("residue", "exact")

#: Flow-controlling MACs for complementary-sparse layers (SPEC §8, 000 §12.5.2, Fig. 12.6):
#: ``"shortened"`` selects one of ``flow_group`` activations per PE (Fig. 12.6-b),
#: ``"superposition"`` updates one of ``flow_group`` partial sums (Fig. 12.6-a), ``"twodim"``
#: both, on a √group × √group split (Fig. 12.6-c); ``"none"`` is the plain array.
FLOW_MODES = ("none", "shortened", "superposition", "twodim")
#: Group sizes the flow-controlling multiplexers can be built for (powers of two, so that every
#: extension-bit code selects a lane; a layer may use any smaller group, 000 L2984).
FLOW_GROUPS = tuple(1 << i for i in range(1, 9))


def flow_lanes(flow: str, group: int) -> tuple[int, int]:
    """``(activation lanes l, partial-sum lanes k)`` of a flow-controlling PE.

    Shortened ``(g, 1)``, superposition ``(1, g)``, two-dimensional ``(√g, √g)``, none ``(1, 1)``.
    """
    if flow == "shortened":
        return group, 1
    if flow == "superposition":
        return 1, group
    if flow == "twodim":
        s = math.isqrt(group)
        return s, s
    return 1, 1


#: Largest accumulator width we accept: the golden models compute in int64, and the output
#: stage adds a bias and a rounding constant (two more bits) before saturating.  The derived
#: width stays below it: 16 + 16 + log2(MAX_K) = 56.
MAX_ACC_WIDTH = 60
MAX_K = 1 << 24
MAX_DIM = 256
#: Largest configuration file read (bytes); a real one is well under a kilobyte.
MAX_CONFIG_BYTES = 1 << 20


def derived_acc_width(a_width: int, w_width: int, max_k: int) -> int:
    """Accumulator width that cannot overflow for ``max_k`` products (SPEC §0).

    The largest product magnitude is ``2**(a_width-1) * 2**(w_width-1)`` (most negative times
    most negative); ``max_k`` of them need ``a_width + w_width - 2 + ceil(log2 max_k)`` magnitude
    bits, plus a sign bit.  SPEC §0's ``a + w + ceil(log2 K)`` keeps one more bit, which leaves
    room for a bias of up to a quarter of the accumulator range entering through ``psum_in``.
    """
    return a_width + w_width + max(0, math.ceil(math.log2(max_k)))


@dataclass(frozen=True)
class AcceleratorConfig:
    """One generated accelerator: systolic array, output stage, optional fault hooks.

    Attributes
    ----------
    rows, cols : int
        Array size R×C (1 … 256 each).
    dataflow : str
        ``"ws"`` (weight-stationary), ``"is"`` (input-stationary) or ``"os"``
        (output-stationary); see SPEC §1 and :mod:`golden.mapping`.
    a_width, w_width : int
        Activation and weight widths in bits, 2 … 16 (8 and 16 are the tested ones).
    max_k : int
        Largest reduction length the accumulator must hold without overflow.
    acc_width : int or None
        Explicit accumulator width; ``None`` derives it from ``max_k`` (see
        :func:`derived_acc_width`).  An explicit width must hold at least one full product.
    fault_hooks : bool
        Add run-time controlled saboteurs to every PE register (see :mod:`rtl_gen.fault`).
        With ``False`` the Verilog contains none of that logic.
    output_stage : bool
        Add the bias / ReLU / requantisation stage after the array.
    bypass : bool
        PE bypass (SPEC §6): a run-time R×C map, written through the ``bypass_*`` ports,
        makes a PE forward its partial sum (WS/IS) or zero its output (OS).
    afd : bool
        Anomalous feature detection and suppression on the streamed activations (SPEC §3;
        WS only), one pipeline stage before the skew.
    median, median_variant : int, str
        Median-3 / Median-5 feature selection on the streamed activations (SPEC §4; WS only),
        0 = off; ``"plain"`` or ``"shared"`` comparators; one pipeline stage.
    checksum : str
        Sanity-Check (SPEC §2; WS only).  ``"spatial"``: one extra *sanity* PE column and a
        checker over the C + 1 outputs; ``"temporal"``: a sanity-input generator in front of
        the array (one extra vector after every batch of N, N set at run time) and per-column
        check accumulators; ``"both"``; ``"none"``: off.
    temporal_batch_bits : int
        Width of the run-time batch size N (1 … 2**bits − 1 data vectors per batch), 1 … 8.
    temporal_mode : str
        ``"residue"`` (default, the seed's residue arithmetic) or ``"exact"``, see
        :data:`TEMPORAL_MODES`.
    lcu, lcu_depth, lcu_max_pairs : bool, int, int
        Lightweight Correction Unit (SPEC §5): an output buffer of ``lcu_depth`` rows of C
        requantised words that captures output vectors, a correction controller that ANDs
        up to ``lcu_max_pairs`` critical pairs in place after a layer, and per-column
        *split* requantisation (``shift + 1``, one bit narrower) for split neurons' copies.
        Needs the output stage.
    flow, flow_group : str, int
        Flow-controlling MAC units for complementary-sparse layers (SPEC §8, see
        :data:`FLOW_MODES`; WS only, because the extension bits travel with the stationary
        weight).  ``flow_group`` is the largest group the multiplexers serve: a power of two
        2 … 256 (``"twodim"``: 4, 16, 64 or 256, split √g × √g); 1 with ``flow = "none"``.
        The flow-controlling array is its own top (:mod:`rtl_gen.flow`): the reliability
        units of the composed top are not built into it.
    lcu_mask : int or None
        The bits the LCU keeps when it ANDs a pair (SPEC §5; 1 = keep), ``a_width`` bits;
        ``None`` is the seed's mask, every bit but ``a_width − 2``
        (:func:`golden.lcu.default_mask`).  A constant of the hardware, not a port.
    tmr, tmr_max_triples : str, int
        Selective-TMR voting controller (SPEC §5 baselines, issue 16): the same output buffer
        as the LCU's (``lcu_depth`` rows of C requantised words: the one buffer-depth field of
        both units, which are exclusive) with a controller that votes up to
        ``tmr_max_triples`` word triples per run in place after a layer, ``"word"`` voter
        (001 L2126) or ``"bitwise"`` majority; ``"none"``: not built (see
        :data:`TMR_VOTERS`).  Needs the output stage; not with ``lcu``.
    double_buffer : bool
        WS / IS: a shadow register for the stationary operand in every PE (issue 18), so the
        next tile shifts in while the current one computes and switches in with the wavefront
        of the next pass's first vector (``swap``); passes stream back to back.  ``False``
        keeps the single-buffered PE (the tile loads only while the array is idle), for area
        comparisons.  No effect on OS (nothing stationary but the sum) or the flow top.
    requant : str
        Output-stage requantisation (SPEC §12, issue 23): ``"shift"`` (default) the
        power-of-two rounding shift; ``"multiplier"`` adds gemmlowp's fixed-point multiplier
        per output lane beside it (run-time select, :mod:`rtl_gen.output_stage`), which
        lengthens the output stage by :data:`REQUANT_STAGES` cycles and needs
        ``acc_bits ≤ 32`` (gemmlowp's int32 accumulator).  See :data:`REQUANT_MODES`.

    A new unit adds its own fields here; :meth:`from_dict` rejects keys
    it does not know, so an old tool never silently ignores a newer option.
    """

    rows: int = 8
    cols: int = 8
    dataflow: str = "ws"
    a_width: int = 8
    w_width: int = 8
    max_k: int = 1024
    acc_width: int | None = None
    fault_hooks: bool = False
    output_stage: bool = True
    bypass: bool = False
    afd: bool = False
    median: int = 0
    median_variant: str = "plain"
    checksum: str = "none"
    temporal_batch_bits: int = 4
    temporal_mode: str = "residue"
    lcu: bool = False
    lcu_depth: int = 64
    lcu_max_pairs: int = 16
    flow: str = "none"
    flow_group: int = 1
    lcu_mask: int | None = None
    tmr: str = "none"
    tmr_max_triples: int = 16
    double_buffer: bool = True
    requant: str = "shift"

    def __post_init__(self) -> None:
        """Check every field; ConfigError naming the first bad one."""
        check_int("rows", self.rows, 1, MAX_DIM)
        check_int("cols", self.cols, 1, MAX_DIM)
        check_choice("dataflow", self.dataflow, DATAFLOWS)
        check_int("a_width", self.a_width, 2, 16)
        check_int("w_width", self.w_width, 2, 16)
        check_int("max_k", self.max_k, 1, MAX_K)
        if self.acc_width is not None:
            lo = self.a_width + self.w_width
            check_int("acc_width", self.acc_width, lo, MAX_ACC_WIDTH)
        for name in ("fault_hooks", "output_stage", "bypass", "afd", "lcu", "double_buffer"):
            check_bool(name, getattr(self, name))
        check_choice("median", self.median, (0, 3, 5), "0 (off), 3 or 5 (window size)")
        check_choice("median_variant", self.median_variant, MEDIAN_VARIANTS)
        check_choice("checksum", self.checksum, CHECKSUM_MODES)
        if self.checksum != "none" and self.dataflow != "ws":
            raise ConfigError("checksum", self.checksum,
                              "'none' unless dataflow is 'ws' (the sanity column is a neuron "
                              "pinned in the array; IS/OS integration is not built yet)")
        check_int("lcu_depth", self.lcu_depth, 2, 1 << 16)
        check_int("lcu_max_pairs", self.lcu_max_pairs, 1, 1 << 16)
        if self.lcu and not self.output_stage:
            raise ConfigError("lcu", self.lcu, "false without the output stage (the LCU "
                              "corrects requantised activations)")
        if self.lcu_mask is not None:
            check_int("lcu_mask", self.lcu_mask, 0, (1 << self.a_width) - 1)
            if not self.lcu:
                raise ConfigError("lcu_mask", self.lcu_mask, "null without the LCU (lcu)")
        self._check_tmr()
        check_int("temporal_batch_bits", self.temporal_batch_bits, 1, 8)
        check_choice("temporal_mode", self.temporal_mode, TEMPORAL_MODES)
        if self.temporal and self.acc_bits < self.stream_width + self.w_width:
            raise ConfigError("acc_width", self.acc_width,
                              f"at least {self.stream_width + self.w_width} bits: the exact "
                              "temporal checksum streams wider sanity vectors")
        for name in ("afd", "median"):
            if getattr(self, name) and self.dataflow != "ws":
                raise ConfigError(
                    name, getattr(self, name),
                    "off unless dataflow is 'ws': only there does one cycle's streamed vector "
                    "hold neighbouring features of one input (IS streams weights, OS streams "
                    "a feature across batch rows); filter on the host for IS/OS")
        self._check_flow()
        self._check_requant()

    def _check_requant(self) -> None:
        check_choice("requant", self.requant, REQUANT_MODES)
        if self.requant == "shift":
            return
        if not self.output_stage:
            raise ConfigError("requant", self.requant, "'shift' without the output stage (the "
                              "multiplier is part of it)")
        if self.flow != "none":
            raise ConfigError("requant", self.requant, f"'shift' with flow '{self.flow}' (not "
                              "built into the flow-controlling array)")
        if self.acc_bits > REQUANT_MAX_ACC:
            field, value = (("acc_width", self.acc_width) if self.acc_width is not None
                            else ("max_k", self.max_k))
            raise ConfigError(field, value, f"an accumulator of at most {REQUANT_MAX_ACC} bits "
                              f"with requant 'multiplier' (gemmlowp's int32; this one has "
                              f"{self.acc_bits}): lower max_k or set acc_width ≤ "
                              f"{REQUANT_MAX_ACC}")

    def _check_tmr(self) -> None:
        check_choice("tmr", self.tmr, TMR_VOTERS)
        check_int("tmr_max_triples", self.tmr_max_triples, 1, 1 << 16)
        if self.tmr == "none":
            return
        if not self.output_stage:
            raise ConfigError("tmr", self.tmr, "'none' without the output stage (the voter "
                              "votes requantised activations)")
        if self.lcu:
            raise ConfigError("tmr", self.tmr, "'none' with lcu (the LCU and the TMR voter "
                              "would share one output buffer; build one of them)")

    def _check_flow(self) -> None:
        check_choice("flow", self.flow, FLOW_MODES)
        if self.flow == "none":
            if self.flow_group != 1 or not is_int(self.flow_group):
                raise ConfigError("flow_group", self.flow_group, "1 when flow is 'none'")
            return
        groups = FLOW_GROUPS if self.flow != "twodim" else (4, 16, 64, 256)
        if not is_int(self.flow_group) or self.flow_group not in groups:
            raise ConfigError("flow_group", self.flow_group,
                              f"one of {', '.join(map(str, groups))} for flow '{self.flow}' "
                              "(the group size the multiplexers are built for)")
        if self.dataflow != "ws":
            raise ConfigError("flow", self.flow, "'none' unless dataflow is 'ws' (the "
                              "extension bits travel with the stationary weight)")
        for name in ("fault_hooks", "bypass", "afd", "median", "lcu"):
            if getattr(self, name):
                raise ConfigError(name, getattr(self, name),
                                  f"off with flow '{self.flow}' (not built into the "
                                  "flow-controlling array)")
        for name in ("checksum", "tmr"):
            if getattr(self, name) != "none":
                raise ConfigError(name, getattr(self, name),
                                  f"'none' with flow '{self.flow}' (not built into the "
                                  "flow-controlling array)")

    # -- derived quantities: the one place each is computed -------------------------------
    @property
    def acc_bits(self) -> int:
        """The accumulator width actually built (explicit or derived)."""
        if self.acc_width is not None:
            return self.acc_width
        return derived_acc_width(self.a_width, self.w_width, self.max_k)

    @property
    def stationary_width(self) -> int:
        """Width of the operand pinned in each PE (WS: weight, IS: activation, OS: none)."""
        return {"ws": self.w_width, "is": self.a_width, "os": 0}[self.dataflow]

    @property
    def double_buffered(self) -> bool:
        """The stationary operand has a shadow register (WS / IS with ``double_buffer``)."""
        return self.double_buffer and self.dataflow != "os" and self.flow == "none"

    @property
    def spatial(self) -> bool:
        """The spatial checksum (sanity column and its checker) is built."""
        return self.checksum in ("spatial", "both")

    @property
    def temporal(self) -> bool:
        """The temporal checksum (sanity-input generator and check accumulators) is built."""
        return self.checksum in ("temporal", "both")

    @property
    def stream_width(self) -> int:
        """Width of the operand streamed from the left edge (WS: activation, IS: weight).

        With the exact temporal checksum the WS activations are ``temporal_batch_bits``
        wider inside the array: the sanity vector is the negated sum of up to
        ``2**temporal_batch_bits − 1`` activation vectors.
        """
        if self.dataflow == "ws" and self.temporal and self.temporal_mode == "exact":
            return self.a_width + self.temporal_batch_bits
        return {"ws": self.a_width, "is": self.w_width, "os": self.a_width}[self.dataflow]

    @property
    def temporal_check_bits(self) -> int:
        """Modulus exponent of the temporal check: ``a_width`` (residue) or ``acc_bits``."""
        return self.acc_bits if self.temporal_mode == "exact" else self.a_width

    @property
    def temporal_batch_max(self) -> int:
        """Largest run-time temporal batch N: ``2**temporal_batch_bits − 1`` data vectors."""
        return (1 << self.temporal_batch_bits) - 1

    @property
    def bias_in_psum(self) -> bool:
        """The bias enters through ``psum_in`` of the first K-tile rather than in the output stage.

        So ``acc_out`` includes it.  Always for IS (its output lanes are batch rows), and for WS
        with a checksum, so that the checks cover bias errors (000 Table 6.1).
        """
        return self.dataflow == "is" or (self.dataflow == "ws" and self.checksum != "none")

    @property
    def array_cols(self) -> int:
        """Columns of PEs actually built: C, plus the sanity column of the spatial checksum."""
        return self.cols + (1 if self.spatial else 0)

    @property
    def sanity_width(self) -> int:
        """Width of the sanity column's weights.

        The negated sum of C weights needs ``w_width + ceil(log2(C + 1))`` bits (it is stored
        exactly, in wider PEs).
        """
        return self.w_width + math.ceil(math.log2(self.cols + 1))

    def register_width(self, register: str, col: int = 0) -> int:
        """Width of a PE register named as in :data:`FAULT_REGISTERS`.

        Parameters
        ----------
        register : str
            ``"weight"``, ``"act"``, ``"psum"``, the MAC logic's ``"product"``, ``"sum"``, or
            the stationary operand's ``"shadow"`` (double-buffered WS / IS).
        col : int
            PE column; column ``cols`` is the sanity column (wider weights).
        """
        if register not in FAULT_REGISTERS:
            raise ConfigError("fault register", register, f"one of {', '.join(FAULT_REGISTERS)}")
        if register == "shadow":  # a copy of the stationary register
            return self.register_width("weight" if self.dataflow != "is" else "act", col)
        if register == "weight" and col >= self.cols:
            return self.sanity_width
        act = self.stream_width if self.dataflow == "ws" else self.a_width
        if register == "product":  # the full-width product of the PE's two operands
            return self.register_width("weight", col) + act
        return {"weight": self.w_width, "act": act, "psum": self.acc_bits,
                "sum": self.acc_bits}[register]

    @property
    def input_stages(self) -> int:
        """Pipeline stages in front of the array.

        Each input unit adds one cycle; the temporal checksum's sanity-input generator is the last
        of them.
        """
        return int(self.afd) + int(bool(self.median)) + int(self.temporal)

    @property
    def array_latency(self) -> int:
        """Cycles from a vector at the array's ports to its result at the array's output.

        WS / IS: ``R + NC`` (r skew registers, c operand hops and one multiply register to
        reach PE (r, c), then the deskew), NC = :attr:`array_cols`.  OS: ``R + NC + 1`` from
        the step carrying ``last`` to the first result row (the drain chain has one more
        register than a partial-sum hop).
        """
        return self.rows + self.array_cols + (1 if self.dataflow == "os" else 0)

    @property
    def requant_stages(self) -> int:
        """Extra output-stage cycles of the fixed-point multiplier: 0, or :data:`REQUANT_STAGES`."""
        return REQUANT_STAGES if self.requant == "multiplier" else 0

    @property
    def output_latency(self) -> int:
        """Cycles from the array's output to the top's ports: 1, plus :attr:`requant_stages`."""
        return 1 + self.requant_stages

    @property
    def latency(self) -> int:
        """Cycles from an input vector to its output vector at the top's ports.

        :attr:`array_latency`, plus the output stage (:attr:`output_latency`: one register,
        three more with the fixed-point multiplier), plus one cycle per input unit
        (:attr:`input_stages`): **R + C + 1** for a plain WS/IS top, **R + C + 2** for OS
        (from ``in_last`` to the first result row).
        """
        return self.array_latency + self.output_latency + self.input_stages

    @property
    def config_cycles(self) -> int:
        """Cycles the driver spends before the first product.

        Writing the bypass map, one row per cycle, when the configuration has PE bypass.
        """
        return self.rows if self.bypass else 0

    def name(self) -> str:
        """A short, file-name-safe identifier, e.g. ``ws_8x8_a8w8_acc26``."""
        s = (f"{self.dataflow}_{self.rows}x{self.cols}_a{self.a_width}w{self.w_width}"
             f"_acc{self.acc_bits}")
        if self.fault_hooks:
            s += "_fh"
        if not self.output_stage:
            s += "_noout"
        if self.bypass:
            s += "_bp"
        if self.afd:
            s += "_afd"
        if self.median:
            s += f"_med{self.median}{self.median_variant[0]}"
        if self.checksum != "none":
            s += f"_cs{self.checksum[0]}"
        if self.temporal:
            s += f"{self.temporal_batch_bits}{self.temporal_mode[0]}"
        if self.lcu:
            s += f"_lcu{self.lcu_depth}x{self.lcu_max_pairs}"
        if self.flow != "none":
            s += f"_flow{self.flow[:2]}{self.flow_group}"
        if self.lcu_mask is not None:
            s += f"m{self.lcu_mask:x}"
        if self.tmr != "none":
            s += f"_tmr{self.tmr[0]}{self.lcu_depth}x{self.tmr_max_triples}"
        if self.dataflow != "os" and self.flow == "none" and not self.double_buffer:
            s += "_sb"
        if self.requant != "shift":
            s += "_rqm"
        return s

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The fields as indented JSON with sorted keys (stable: Verilog headers embed it)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> AcceleratorConfig:
        """A validated configuration from a dict of fields.

        Raises
        ------
        ConfigError
            ``data`` is not a dict, has an unknown key, or a value is invalid.
        """
        if not isinstance(data, dict):
            raise ConfigError("configuration", type(data).__name__, "a JSON object")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError("configuration key", key, f"one of {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> AcceleratorConfig:
        """Parse a JSON object of configuration fields; anything else is a ConfigError."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("configuration", f"not JSON ({exc.msg}, line {exc.lineno})",
                              "a JSON object of configuration fields") from None
        except RecursionError:
            raise ConfigError("configuration", "nested too deeply",
                              "a JSON object of configuration fields") from None
        except ValueError as exc:  # Python refuses integers of more than 4,300 digits
            what = ("an integer too long to read" if "digits" in str(exc)
                    else f"not usable JSON ({exc})")
            raise ConfigError("configuration", what,
                              "a JSON object of configuration fields") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> AcceleratorConfig:
        """Read a configuration file: a regular UTF-8 file of at most 1 MB holding JSON."""
        p = os.fspath(path)
        try:
            # Non-blocking, and checked before reading: a FIFO or a device never hangs it.
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError("config file", p, f"a readable file ({reason})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError("config file", p, "a regular file (not a folder, device or "
                                  "pipe)")
            with os.fdopen(os.dup(fd), "rb") as fh:
                raw = fh.read(MAX_CONFIG_BYTES + 1)
        finally:
            os.close(fd)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError("config file", p, f"at most {MAX_CONFIG_BYTES:,} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("config file", p, f"UTF-8 text (byte {exc.start} is not)") \
                from None
        return cls.from_json(text)

    def replace(self, **changes: Any) -> AcceleratorConfig:
        """A copy with ``changes`` applied, validated again."""
        return dataclasses.replace(self, **changes)
