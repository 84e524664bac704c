"""pyuvm environment of the compute engine (rtl/cnn_compute_engine.sv).

One class per role, as tb/env/ for the parameter path:

- bfm.py: ComputeBfm owns the pins of cnn_compute_top (toggles, waits).
- items.py: LayerCommand (what to run) and ActivationObservation (what came out).
- sequences.py: LayerByLayerSeq (every layer fed the golden input) and ChainedSeq
  (the engine's own outputs feed the next layer: the whole network per image).
- driver.py: CommandDriver (loads inputs, runs descriptors) and monitor.py:
  ActivationMonitor (dumps the outputs of the finished descriptors).
- scoreboard.py: ActivationScoreboard (every output activation against the golden
  model, first-differences table), coverage.py: ComputeCoverage (bins, hole report).
- config.py: ComputeConfig (package, program, golden codes, files), env.py: ComputeEnv.
"""
