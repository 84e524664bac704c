#!/usr/bin/env bash
# Open the most recent simulation's waves (FST) in GTKWave with the save file
# that groups stream, loader state and memory writes. Waves exist only for runs
# made with WAVES=1 (for example: WAVES=1 make sim SIM=icarus).
# Every failure is one line on stderr and a non-zero exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
fst=$(ls -t build/sim/runs/*/*/*.fst 2>/dev/null | head -n 1 || true)
if [ -z "$fst" ]; then
    echo "waves: no FST under build/sim/runs/; run 'WAVES=1 make sim SIM=icarus' first" >&2
    exit 2
fi
save="$(dirname "$fst")/cnn_param.gtkw"
[ -f "$save" ] || save=tb/cnn_param.gtkw
if ! command -v gtkwave >/dev/null 2>&1; then
    echo "waves: gtkwave is not installed ('make setup' as root, or 'sudo apt-get install gtkwave'); waves are in $fst" >&2
    exit 2
fi
headless="see docs/waveforms.md 'Headless machines': xvfb-run -a gtkwave --script=probe.tcl $fst $save"
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    echo "waves: no display (DISPLAY is not set), GTKWave cannot open a window; $headless" >&2
    exit 2
fi
echo "gtkwave $fst $save"
# GTKWave exits 0 even when it cannot open the display: watch its messages.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# stderr goes through tee (live, and into the log); the pipeline ends only after tee.
status=0
{ gtkwave "$fst" "$save" 2>&1 1>&3 3>&- | tee "$log" >&2; } 3>&1 || status=$?
if grep -q "Could not initialize GTK" "$log"; then
    echo "waves: GTKWave could not open the display '${DISPLAY:-$WAYLAND_DISPLAY}'; $headless" >&2
    exit 2
fi
exit "$status"
