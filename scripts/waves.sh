#!/usr/bin/env bash
# Open the most recent simulation's waves (FST) in GTKWave with the save file
# that groups stream, loader state and memory writes. Waves exist only for runs
# made with WAVES=1 (for example: WAVES=1 make sim SIM=icarus).
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
    echo "waves: gtkwave is not installed ('sudo apt-get install gtkwave'); waves are in $fst" >&2
    exit 2
fi
echo "gtkwave $fst $save"
exec gtkwave "$fst" "$save"
