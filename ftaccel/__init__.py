"""ftaccel: a generator of fault-tolerant systolic-array DNN accelerators.

The distribution installs this one import root; its rooms are sub-packages:

``ftaccel.rtl_gen``
    Amaranth components and the composed top; :class:`AcceleratorConfig`; Verilog emission.
``ftaccel.golden``
    bit-exact numpy models of every unit, the cycle model, the driver program, faults.
``ftaccel.tb``
    cocotb testbenches and the simulator runner (Icarus, Verilator).
``ftaccel.synth``
    the Yosys area flow and the published figures it is compared with.

``ftaccel.Network`` (:class:`ftaccel.tb.network.Network`) runs a quantised DNN on the golden
model, the cycle model or the RTL; it is imported on first use.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ftaccel")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "Network"]


def __getattr__(name: str):
    # Lazy: importing ftaccel stays cheap; the network runner pulls in every room.
    if name == "Network":
        from ftaccel.tb.network import Network

        return Network
    raise AttributeError(f"module 'ftaccel' has no attribute {name!r}")
