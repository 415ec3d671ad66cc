"""The application layer: networks, campaigns, critical neurons, the ``rtlgen`` CLI and the demo.

It uses every room below it (:mod:`ftaccel.rtl_gen`, :mod:`ftaccel.golden`, :mod:`ftaccel.tb`,
:mod:`ftaccel.synth` and the core) and nothing below imports it.
"""
