"""RTL fault hooks and the PE fault sites (Ozen 2023 §6.3; Ahmadilivani 2025 §3.4).

The hooks put a run-time controlled saboteur on every PE fault site (:mod:`rtl_gen.fault`):
stuck-at-0/1 (permanent) or a bit flip in one cycle.  The sites are declared here once, in the
encoding of the ``fault__reg`` control (:class:`ftaccel.enums.FaultRegister`), each with the
configurations that have it and its width: :func:`fault_sites` is the one answer to "which
sites does this configuration have", used by the product checks, the campaigns and the
fault-hook table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ftaccel.enums import Dataflow, FaultMode, FaultRegister
from ftaccel.errors import ConfigError, check_bool

from .base import Field, Unit

__all__ = ["FaultHooks", "FaultSite", "SITES", "FAULT_CONTROLS", "FAULT_REGISTERS",
           "FAULT_MODES", "fault_sites", "register_width", "check_fault"]

#: PE fault sites in the encoding of the ``reg`` fault control.
FAULT_REGISTERS = tuple(FaultRegister)
#: Fault kinds in the encoding of the ``mode`` fault control.
FAULT_MODES = tuple(FaultMode)
#: The run-time controls of the fault hooks and their widths in bits: the one list the RTL
#: (:class:`rtl_gen.fault.FaultControlSignature`), the driver program and
#: :meth:`golden.faults.Fault.controls` are built from.  ``reg`` and ``mode`` index
#: :data:`FAULT_REGISTERS` and :data:`FAULT_MODES`; ``bit`` addresses registers of up to 64
#: bits; ``cycle`` counts cycles from reset.
FAULT_CONTROLS = {"enable": 1, "row": 8, "col": 8, "reg": 3, "bit": 6, "mode": 2, "cycle": 32}


def _act(cfg, col: int, row: int = 0) -> int:
    """Width of PE (row, col)'s activation register.

    WS: the streamed operand (wider with the exact temporal checksum); IS: the stationary
    activation (the sanity column's is the negated sum of C); OS: the streamed activation (the
    sanity row's is the negated sum of R).
    """
    if cfg.dataflow is Dataflow.WS:
        return cfg.stream_width
    if cfg.dataflow is Dataflow.IS:
        return cfg.sanity_width if col >= cfg.cols else cfg.a_width
    return cfg.sanity_row_width if row >= cfg.rows else cfg.a_width


def _weight(cfg, col: int, row: int = 0) -> int:
    """Width of PE (row, col)'s weight register (IS: the streamed, maybe widened, operand)."""
    if cfg.dataflow is Dataflow.IS:
        return cfg.stream_width
    return cfg.sanity_width if col >= cfg.cols else cfg.w_width


@dataclass(frozen=True)
class FaultSite:
    """One PE fault site: which configurations have it and how wide it is.

    Parameters
    ----------
    register : FaultRegister
        The site, as the ``reg`` control encodes it.
    exists : callable
        ``exists(cfg)``: the PE of ``cfg`` has it.
    width : callable
        ``width(cfg, col, row)``: its bits in PE (``row``, ``col``) (column ``cols`` is the
        spatial checksum's sanity column, row ``rows`` the OS temporal checksum's sanity row,
        whose operands are wider).
    why : str
        The sentence a refused site gets ("only a double-buffered WS/IS PE has ...").
    """

    register: FaultRegister
    exists: Callable
    width: Callable
    why: str = ""


#: Every PE fault site, in encoding order.
SITES = (
    FaultSite(FaultRegister.WEIGHT, lambda cfg: True, _weight),
    FaultSite(FaultRegister.ACT, lambda cfg: True, _act),
    FaultSite(FaultRegister.PSUM, lambda cfg: True, lambda cfg, col, row: cfg.acc_bits),
    # the full-width product of the PE's two operands
    FaultSite(FaultRegister.PRODUCT, lambda cfg: True,
              lambda cfg, col, row: _weight(cfg, col, row) + _act(cfg, col, row)),
    FaultSite(FaultRegister.SUM, lambda cfg: True, lambda cfg, col, row: cfg.acc_bits),
    # a copy of the stationary register, on its load chain
    FaultSite(FaultRegister.SHADOW, lambda cfg: cfg.double_buffered,
              lambda cfg, col, row: (_weight(cfg, col, row) if cfg.dataflow is Dataflow.WS
                                     else _act(cfg, col, row)),
              why="only a double-buffered WS/IS PE has a shadow register"),
)


def _site(register) -> FaultSite:
    for site in SITES:
        if site.register == register:
            return site
    raise ConfigError("fault register", register, f"one of {', '.join(FAULT_REGISTERS)}")


def fault_sites(cfg) -> tuple[FaultRegister, ...]:
    """The PE fault sites ``cfg``'s PE has, in encoding order."""
    return tuple(s.register for s in SITES if s.exists(cfg))


def register_width(cfg, register, col: int = 0, row: int = 0) -> int:
    """Width of PE fault site ``register`` in PE (``row``, ``col``) of ``cfg``'s array."""
    return _site(register).width(cfg, col, row)


def check_fault(cfg, fault) -> None:
    """ConfigError unless ``fault`` (row, col, register, bit) can be armed on ``cfg``.

    The hooks must be built, the PE inside the array (the sanity column and row included), the
    site one the PE has, the bit inside the register.  The cycle is checked against a program
    (:func:`tb.product.prepare`).
    """
    if not cfg.fault_hooks:
        raise ConfigError("fault_hooks", cfg.fault_hooks, "true to inject a fault")
    nc, nr = cfg.array_cols, cfg.array_rows
    if fault.row >= nr or fault.col >= nc:
        extra = "".join(f" ({what} {n} is the sanity {what})" for what, n, built in
                        (("column", cfg.cols, nc > cfg.cols), ("row", cfg.rows, nr > cfg.rows))
                        if built)
        raise ConfigError("fault PE", (fault.row, fault.col),
                          f"a PE of the {nr}×{nc} array{extra}")
    site = _site(fault.register)
    if not site.exists(cfg):
        raise ConfigError("fault register", str(fault.register),
                          f"{', '.join(fault_sites(cfg)[:-1])} or {fault_sites(cfg)[-1]}: "
                          f"{site.why}")
    width = site.width(cfg, fault.col, fault.row)
    if fault.bit >= width:
        raise ConfigError("fault bit", fault.bit, f"a bit of the {width}-bit "
                          f"{fault.register} register (0 … {width - 1})")


class FaultHooks(Unit):
    """Run-time controlled saboteurs on every PE fault site (:mod:`rtl_gen.fault`)."""

    name = "fault_hooks"
    title = "RTL fault hooks: stuck-at-0/1, transient flip per PE site"
    switch = "fault_hooks"
    area = r"fault\w*|saboteur\w*"
    golden = "faults"
    fields = (
        Field("fault_hooks", "bool", False,
              "Add run-time controlled saboteurs to every PE fault site (:mod:`rtl_gen.fault`); "
              "without, the Verilog contains none of that logic.",
              "add run-time fault saboteurs to every PE register", kind="on"),
    )

    def check(self, cfg) -> None:
        """``fault_hooks`` is a bool."""
        check_bool("fault_hooks", cfg.fault_hooks)

    def suffix(self, cfg) -> str:
        """``_fh`` with the hooks."""
        return "_fh" if cfg.fault_hooks else ""


UNIT = FaultHooks()
