# cnn-cosim: po2 int8 quantization, parameter export and RTL co-simulation.
# `make demo` and `make test` set themselves up; everything they write goes
# under build/.

VENV    := .venv
PY      := $(VENV)/bin/python
COSIM   := $(VENV)/bin/cosim
BUILD   := build
PACKAGE := $(BUILD)/package
GOLDEN  := $(BUILD)/golden

.PHONY: setup demo test package golden bench lint clean help

help:
	@echo "make demo     - the whole flow on the offline default (digits), report at the end"
	@echo "make test     - the regression (pytest), JUnit XML under $(BUILD)/test-results/"
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
	$(COSIM) package --out $(PACKAGE) --verbose

test: setup
	@mkdir -p $(BUILD)/test-results
	$(PY) -m pytest -q --junitxml=$(BUILD)/test-results/pytest.xml

bench: setup
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(BUILD)
