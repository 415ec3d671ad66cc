"""Double-buffered stationary tiles: a shadow register per PE (WS / IS).

The next tile shifts into the shadow registers while the current one computes and switches in
with the wavefront of the next pass's first vector (``swap``), so passes stream back to back.
Its area is the PE's figure minus that of the single-buffered PE (synthesised beside it).
"""

from __future__ import annotations

from ftaccel.enums import Dataflow
from ftaccel.errors import check_bool

from .base import Field, Unit

__all__ = ["DoubleBuffer"]


class DoubleBuffer(Unit):
    """Shadow registers for the stationary operand (on by default; none in OS or flow)."""

    name = "double_buffer"
    title = "double-buffered stationary tiles (shadow register and swap per PE)"
    switch = "double_buffer"
    flow_top = True  # (ignored there: the flow-controlling PE has no shadow)
    fields = (
        Field("double_buffer", "bool", True,
              "WS / IS: a shadow register for the stationary operand in every PE, so the next "
              "tile shifts in while the current one computes; ``false`` keeps the "
              "single-buffered PE (the tile loads while the array is idle).  No effect on OS "
              "or the flow top.",
              "WS/IS: the single-buffered PE (tiles load while the array idles) instead of the "
              "default shadow registers", kind="off", flag="--single-buffer"),
    )

    def built(self, cfg) -> bool:
        """The shadow registers exist: WS / IS, not the flow top, ``double_buffer``."""
        return cfg.double_buffered

    def check(self, cfg) -> None:
        """A bool."""
        check_bool("double_buffer", cfg.double_buffer)

    def suffix(self, cfg) -> str:
        """``_sb`` for the single-buffered PE where a shadow could be built."""
        if cfg.dataflow is not Dataflow.OS and cfg.flow == "none" and not cfg.double_buffer:
            return "_sb"
        return ""


UNIT = DoubleBuffer()
