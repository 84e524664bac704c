# cnn-cosim: po2 int8 quantization, parameter export and RTL co-simulation.
# `make demo` and `make test` set themselves up; everything they write goes
# under build/.

VENV    := .venv
PY      := $(VENV)/bin/python
COSIM   := $(VENV)/bin/cosim
BUILD   := build
PACKAGE := $(BUILD)/package
GOLDEN  := $(BUILD)/golden

.PHONY: setup demo test sim mutation networks matrix waves package golden bench lint clean help

help:
	@echo "make demo     - the whole flow on the offline default: quantize, export, golden, RTL on Icarus, report"
	@echo "make test     - the regression (pytest: Python side, then RTL on Icarus and Verilator)"
	@echo "make sim SIM=icarus|verilator [WAVES=1] - the RTL tests on one simulator"
	@echo "make matrix   - every accelerator x network cell through the RTL (tests marked matrix)"
	@echo "make mutation SIM=icarus|verilator - the testbench must kill every RTL mutant (tb/mutants.py)"
	@echo "make networks - ResNet-18 (shipped and through a user factory): package, golden-verify, RTL on Icarus, report"
	@echo "make waves    - open the last run's waves in GTKWave"
	@echo "make package  - quantize the shipped checkpoint and write $(PACKAGE)/"
	@echo "make golden   - stream, expected memory image, address map (and golden verification) in $(GOLDEN)/"
	@echo "make bench    - benchmark table (PTQ, export, golden inference)"
	@echo "make lint     - ruff"
	@echo "make setup    - create $(VENV) and install tools (idempotent)"
	@echo "make clean    - remove $(BUILD)/"

setup:
	@bash scripts/setup.sh

package: setup
	$(COSIM) package --out $(PACKAGE) --quiet

golden: setup
	@test -f $(PACKAGE)/manifest.json || $(COSIM) package --out $(PACKAGE) --quiet
	$(COSIM) golden --package $(PACKAGE) --out $(GOLDEN)
	$(COSIM) golden-verify --package $(PACKAGE) --out $(GOLDEN)

demo: setup
	$(COSIM) demo --build $(BUILD)

test: setup
	@mkdir -p $(BUILD)/test-results
	$(PY) -m pytest -q -n 2 --dist worksteal tests tb -m "not networks and not matrix and not compute_mutation" \
		--junitxml=$(BUILD)/test-results/pytest.xml

SIM ?= icarus
sim: setup
	@mkdir -p $(BUILD)/test-results
	$(PY) -m pytest -q tb -k "$(SIM) or not icarus and not verilator" \
		--junitxml=$(BUILD)/test-results/pytest-sim-$(SIM).xml

mutation: setup
	@mkdir -p $(BUILD)/test-results
	MUTATION_SIMS=$(SIM) $(PY) -m pytest -q -s -p no:xdist tb/test_mutation.py -k "$(SIM)" \
		--junitxml=$(BUILD)/test-results/pytest-mutation-$(SIM).xml
	@if [ "$(SIM)" = verilator ]; then \
		$(PY) -m pytest -q -s -p no:xdist tb/test_compute_mutation.py \
			--junitxml=$(BUILD)/test-results/pytest-compute-mutation.xml; fi

# ResNet-18 from its shipped checkpoint and from a torchvision checkpoint through a
# user factory: package, golden, golden-verify, the demo with the RTL on Icarus
# (report in build/networks/resnet18/); the tests marked `networks`, minutes each.
networks: setup
	@mkdir -p $(BUILD)/test-results
	$(PY) -m pytest -q -n 2 --dist worksteal tests tb -m networks --junitxml=$(BUILD)/test-results/pytest-networks.xml

# The accelerator matrix: {default 64-bit, 32-bit with a 16x16 tile, 128-bit} x
# {mobilenet_v2_relu, small CNN}, the whole parameter image through the reference
# RTL (the tests marked `matrix`; the default cell is part of make test).
matrix: setup
	@mkdir -p $(BUILD)/test-results
	$(PY) -m pytest -q -n 2 --dist worksteal tests tb -m matrix --junitxml=$(BUILD)/test-results/pytest-matrix.xml

waves:
	@bash scripts/waves.sh

bench: setup
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(BUILD)
