"""Waves of a failing layer: the GTKWave save file of the compute engine.

A failing step is rerun alone with a build that defines COMPUTE_WAVES; the BFM
toggles wave_req just before that step starts (after its inputs are loaded), so
the dump holds that layer only. `write_compute_gtkw` writes a save file for it
with the engine's signals in groups, names taken from the dump itself (their
widths depend on the build's parameters).
"""

from __future__ import annotations

from pathlib import Path

#: (group, signal names relative to the top; arrays and vectors get their range from
#: the dump)
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("control", ("clk", "rst_n", "busy", "done_count", "err", "u_engine.state_q",
                 "u_engine.cur_q", "u_engine.tile_q", "u_engine.c0_q")),
    ("position", ("u_engine.oy_q", "u_engine.ox_q", "u_engine.icx_q", "u_engine.ky_q",
                  "u_engine.kx_q", "u_engine.ent_q", "u_engine.gen_q")),
    ("parameter reads", ("u_engine.p_re", "u_engine.p_raddr", "u_engine.p_rdata")),
    ("activation reads", ("u_engine.a_re0", "u_engine.a_raddr0", "u_engine.a_rdata0",
                          "u_engine.a_re1", "u_engine.a_raddr1", "u_engine.a_rdata1")),
    ("MAC pipeline", ("u_engine.s1_v_q", "u_engine.s1_pad_q", "u_engine.s1_first_q",
                      "u_engine.s1_last_q", "u_engine.fin_v_q", "u_engine.fin_oy_q",
                      "u_engine.fin_ox_q")),
    ("activation writes", ("u_engine.a_we", "u_engine.a_waddr", "u_engine.a_wbe",
                           "u_engine.a_wdata")),
)


def _match(names: set[str], wanted: str) -> str | None:
    """The dump's full name of `wanted` (a suffix after the top scope, any range)."""
    for full in sorted(names):
        base = full.split("[", 1)[0]
        if base.endswith("." + wanted) and base.count(".") - wanted.count(".") <= 2:
            return full
    return None


def write_compute_gtkw(path: Path, dump: Path, names: set[str] | None = None) -> Path:
    """A GTKWave save file opening `dump` with the engine's signals (`names`: the
    dump's signal names; default read with fst2vcd, or every wanted name without a
    range when GTKWave is not installed)."""
    if names is None:
        try:
            from cosim.tb.sim import fst_signal_names
            names = fst_signal_names(dump) if dump.suffix == ".fst" else None
        except (FileNotFoundError, OSError):
            names = None
    lines = ["[*]", "[*] cnn-cosim: GTKWave save file for the compute engine (one layer).",
             f'[dumpfile] "{Path(dump).resolve()}"', "[timestart] 0", "[size] 1600 900",
             "[sst_width] 260", "[signals_width] 320"]
    for group, signals in GROUPS:
        lines += ["@800200", f"-{group}"]
        for s in signals:
            full = _match(names, s) if names else f"cnn_compute_top.{s}"
            if full is None:
                continue
            lines += ["@22" if "[" in full else "@28", full]
        lines += ["@1000200", f"-{group}"]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)
