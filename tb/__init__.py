"""cocotb testbenches and the simulator runner (Icarus, Verilator)."""
