"""Bit-exact numpy models of every unit, the cycle model, the driver program, faults."""
