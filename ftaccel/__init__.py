"""ftaccel: a generator of fault-tolerant systolic-array DNN accelerators.

The distribution installs this one import root; the core (``ftaccel.errors``,
``ftaccel.config``, ``ftaccel.enums``, ``ftaccel.files`` and the unit registry
``ftaccel.units``) is at its top, its rooms are sub-packages:

``ftaccel.rtl_gen``
    Amaranth components and the composed top; Verilog emission.
``ftaccel.golden``
    bit-exact numpy models of every unit, the cycle model, the driver program, faults.
``ftaccel.tb``
    cocotb testbenches and the simulator runner (Icarus, Verilator).
``ftaccel.synth``
    the Yosys area flow, OpenSTA timing and power, and the published figures they are
    compared with.
``ftaccel.app``
    the application: networks, campaigns, critical neurons, the ``rtlgen`` command, the demo.

The names most users need are available at the top (loaded on first use, so that
``import ftaccel`` stays cheap and does not pull in Amaranth or cocotb):

========================  ===============================================================
``AcceleratorConfig``     the frozen, validated configuration (``ConfigError`` if not)
``generate``              Verilog + RTLIL + ``config.json`` of the composed top
``matmul``                ``A @ B`` by the functional golden model (overflow checked)
``run_matmul``            the same product by the register-level cycle model of the top
``rtl_matmul``            the same product simulated on the generated RTL (each returns one
                          ``MatmulResult``: ``acc``, ``q``, ``cycles``, ``alarms``)
``Fault``                 a stuck-at or transient fault in a PE register
``synthesize``            the Yosys area flow (``area.json``, ``area.md``, ``area.png``);
                          ``timing=True`` / ``power=True`` add OpenSTA's paths and power
``energy_per_inference``  power × cycles / f of a network run (from a report or the cache)
``Network``               a quantised DNN run on the golden model, the cycle model or the RTL
``run_campaign``          a fault campaign on a network (a TOML spec or a plain dict)
``compare``               every protection on the same faults: accuracy under faults beside
                          area, power, Fmax, cycles and energy (``compare.json``/``.md``,
                          ``pareto.png``)
========================  ===============================================================
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ftaccel")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

#: public name -> module that defines it
_API = {
    "AcceleratorConfig": "ftaccel.config",
    "ConfigError": "ftaccel.config",
    "generate": "ftaccel.rtl_gen.accelerator",
    "matmul": "ftaccel.golden.array",
    "run_matmul": "ftaccel.golden.accelerator",
    "rtl_matmul": "ftaccel.tb.accelerator",
    "Fault": "ftaccel.golden.faults",
    "synthesize": "ftaccel.synth.flow",
    "energy_per_inference": "ftaccel.synth.energy",
    "Network": "ftaccel.app.network",
    "run_campaign": "ftaccel.app.campaign",
    "compare": "ftaccel.app.compare",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'ftaccel' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
