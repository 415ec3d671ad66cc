"""The systolic array: its size, dataflow and number widths (Ozen 2023 §2.3, §10.3.2).

Numbers (Ozen 2023 §2.3; the project's convention): data are two's-complement signed
integers; activations are ``a_width`` bits, weights ``w_width`` bits; the accumulator is
``a_width + w_width + ceil(log2(max_k))`` bits unless ``acc_width`` is given, where ``max_k``
is the largest reduction length (the ``K`` of an ``M×K @ K×N`` product, summed over all
tiles) that the configuration promises never to overflow.
"""

from __future__ import annotations

import math

from ftaccel.enums import Dataflow
from ftaccel.errors import check_choice, check_int

from .base import Field, Unit

__all__ = ["Array", "DATAFLOWS", "MAX_ACC_WIDTH", "MAX_K", "MAX_DIM", "derived_acc_width"]

#: Dataflows, in the order the options list them.
DATAFLOWS = tuple(Dataflow)
#: Largest accumulator width: the golden models compute in int64, and the output stage adds a
#: bias and a rounding constant (two more bits) before saturating.  The derived width stays
#: below it: 16 + 16 + log2(MAX_K) = 56.
MAX_ACC_WIDTH = 60
#: Largest reduction length and array side.
MAX_K = 1 << 24
MAX_DIM = 256


def derived_acc_width(a_width: int, w_width: int, max_k: int) -> int:
    """Accumulator width that cannot overflow for ``max_k`` products (Ozen 2023 §2.3).

    The largest product magnitude is ``2**(a_width-1) * 2**(w_width-1)`` (most negative times
    most negative); ``max_k`` of them need ``a_width + w_width - 2 + ceil(log2 max_k)``
    magnitude bits, plus a sign bit.  ``a + w + ceil(log2 K)`` keeps one more bit, which leaves
    room for a bias of up to a quarter of the accumulator range entering through ``psum_in``.
    """
    return a_width + w_width + max(0, math.ceil(math.log2(max_k)))


class Array(Unit):
    """The array every configuration builds: R×C PEs in one dataflow."""

    name = "array"
    title = "systolic array (Ozen 2023 §2.3)"
    flow_top = True
    fields = (
        Field("rows", "int", 8, "Array rows R (1 … 256).", "array rows R (default 8)"),
        Field("cols", "int", 8, "Array columns C (1 … 256).", "array columns C (default 8)"),
        Field("dataflow", "Dataflow", Dataflow.WS,
              "``ws`` (weight-stationary), ``is`` (input-stationary) or ``os`` "
              "(output-stationary), a :class:`ftaccel.enums.Dataflow`; see "
              ":mod:`golden.mapping`.", "ws, is or os (default ws)", kind="text", enum=Dataflow),
        Field("a_width", "int", 8, "Activation width in bits, 2 … 16.",
              "activation width in bits (default 8)"),
        Field("w_width", "int", 8, "Weight width in bits, 2 … 16.",
              "weight width in bits (default 8)"),
        Field("max_k", "int", 1024,
              "Largest reduction length the accumulator must hold without overflow.",
              "largest reduction length the derived accumulator holds (default 1024)"),
        Field("acc_width", "int | None", None,
              "Explicit accumulator width; ``None`` derives it from ``max_k`` "
              "(:func:`derived_acc_width`).  An explicit width holds at least one full product.",
              "accumulator width (default: derived)"),
    )

    def check(self, cfg) -> None:
        """Sizes, dataflow and widths in range."""
        check_int("rows", cfg.rows, 1, MAX_DIM)
        check_int("cols", cfg.cols, 1, MAX_DIM)
        check_choice("dataflow", cfg.dataflow, DATAFLOWS)
        check_int("a_width", cfg.a_width, 2, 16)
        check_int("w_width", cfg.w_width, 2, 16)
        check_int("max_k", cfg.max_k, 1, MAX_K)
        if cfg.acc_width is not None:
            check_int("acc_width", cfg.acc_width, cfg.a_width + cfg.w_width, MAX_ACC_WIDTH)

    def area_patterns(self) -> tuple[tuple[str, str], ...]:
        """The PEs (``pe``) and the array's own logic, skew and deskew (``array``)."""
        return (("pe", r"pe(_\w*)?|mac|processing_element"),
                ("array", r"(systolic_)?array|skew\w*|deskew\w*|\w+_skew"))

    def suffix(self, cfg) -> str:
        """``ws_8x8_a8w8_acc26``: the start of every configuration's name."""
        return (f"{cfg.dataflow}_{cfg.rows}x{cfg.cols}_a{cfg.a_width}w{cfg.w_width}"
                f"_acc{cfg.acc_bits}")


UNIT = Array()
