"""python -m bench: run every benchmark group, print one table, write build/bench.json."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from bench import compute, golden_infer, quant_flow, sim_throughput

GROUPS = {"quantization flow": quant_flow.rows, "golden model": golden_infer.rows,
          "RTL simulation": sim_throughput.rows, "compute engine": compute.rows}


def machine() -> dict:
    """What the figures were measured on."""
    return {"python": platform.python_version(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "system": platform.platform()}


def _seconds(value: float) -> str:
    """Seconds with enough digits: '2.53 s', '41.2 ms'."""
    return f"{value:.2f} s" if value >= 1 else f"{value * 1e3:.1f} ms"


def main(out: Path = Path("build/bench.json")) -> int:
    console = Console(width=140)
    results = []
    for group, produce in GROUPS.items():
        console.print(f"[bold]{group}[/bold] ...")
        for row in produce():
            results.append({"group": group, **row,
                            "ratio": row["seconds"] / row["baseline_seconds"]})
    table = Table(title="cnn-cosim benchmarks (ratios are against a baseline run in the same "
                        "process)", title_justify="left")
    for column in ("benchmark", "time", "baseline", "baseline time", "ratio", "detail"):
        table.add_column(column, justify="right" if column in ("time", "baseline time",
                                                                "ratio") else "left")
    for row in results:
        table.add_row(row["name"], _seconds(row["seconds"]), row["baseline"],
                      _seconds(row["baseline_seconds"]), f"{row['ratio']:.2f}x", row["detail"])
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "rows": results}, indent=1) + "\n")
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
