"""Amaranth components and the composed top; :class:`AcceleratorConfig`; Verilog emission."""
