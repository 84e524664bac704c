#!/usr/bin/env bash
# Idempotent environment setup: .venv with the project and its pinned tools;
# Icarus Verilog, the lz4 headers, GTKWave and Xvfb from Debian when missing
# (`make test` opens the waves in GTKWave under Xvfb; `make waves` needs GTKWave). Safe to run again: it only does
# what is not done yet (the venv install is keyed on pyproject.toml's hash).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.setup-stamp

say() { printf 'setup: %s\n' "$*"; }

# --- Debian packages: Icarus Verilog, lz4 headers (Verilator's FST writer),
# GTKWave (waves; its fst2vcd reads FST), Xvfb and xauth (GTKWave headless),
# ccache (Verilator builds of the accelerator matrix share compiled objects) ---
missing=()
command -v iverilog >/dev/null 2>&1 || missing+=(iverilog)
[ -f /usr/include/lz4.h ] || missing+=(liblz4-dev)
command -v gtkwave >/dev/null 2>&1 || missing+=(gtkwave)
command -v xvfb-run >/dev/null 2>&1 || missing+=(xvfb)
command -v xauth >/dev/null 2>&1 || missing+=(xauth)
command -v ccache >/dev/null 2>&1 || missing+=(ccache)  # Verilator's C++ builds (OBJCACHE)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        say "installing ${missing[*]} with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        say "missing Debian packages: ${missing[*]}; install them with 'sudo apt-get install ${missing[*]}'" >&2
        say "(the Python flow works without them; the simulations need iverilog; tests that" >&2
        say " need gtkwave or xvfb-run skip, saying so)" >&2
    fi
fi

# --- Python environment ------------------------------------------------------
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
say "installing Python packages into $VENV (torch is large; first run takes a few minutes)"
# This machine's pip configuration names local indexes that may not exist; pip
# warns about each one per package. Drop those lines, keep every other message.
quiet_pip() {
    "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "is neither a file nor a directory" || true; }
}
quiet_pip install -q --upgrade pip setuptools wheel
quiet_pip install -q -e ".[sim,dev]"
echo "$want" > "$STAMP"
say "done"
