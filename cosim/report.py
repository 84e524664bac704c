"""The end-to-end run report: one self-contained HTML page over a build directory.

``build_report(build_dir)`` reads the artifacts a run leaves in ``build/`` (the
parameter package, the golden layout and verification, the testbench summaries,
the benchmark table and the waves) and writes ``build/report/index.html`` with its
PNG plots next to it, plus ``build/report/summary.json`` with the headline numbers
the page shows. Every number on the page is read from an artifact (or computed from
one, like the per-layer SQNR); an artifact that is missing or unreadable leaves its
section with a note that says which file is missing and which command makes it.
Links are relative, so the report folder can be opened in place with ``file://``.
docs/report.md describes each section.
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import io
import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosim.quant.formats import atomic_write_bytes

__all__ = ["SECTIONS", "build_report", "find_waves"]

REPO_ROOT = Path(__file__).resolve().parents[1]
GTKW_FILE = REPO_ROOT / "tb" / "cnn_param.gtkw"
WAVES_NAME = "cnn_param_top.fst"
#: Simulators the testbench runs (tb/sim.py SIMS); a missing one is reported.
SIMULATORS = ("icarus", "verilator")

#: (anchor, title) of the page's sections, in order.
SECTIONS = (
    ("accuracy", "1. Accuracy: float vs int8"),
    ("quant-error", "2. Per-layer quantization error"),
    ("shifts", "3. Shift exponents"),
    ("memory", "4. Parameter memory map"),
    ("golden", "5. Golden model verification"),
    ("simulation", "6. RTL simulation"),
    ("compute", "7. Compute engine, layer by layer"),
    ("files", "8. Files"),
)

KIND_COLORS = {"regular": "#4c72b0", "depthwise": "#dd8452", "pointwise": "#55a868",
               "grouped": "#8172b3",
               "linear": "#c44e52"}

CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#f6f8fa; --ok:#1a7f37;
        --bad:#cf222e; --warn:#9a6700; --accent:#0969da; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial,
       "DejaVu Sans", sans-serif; color:var(--fg); background:#fff; }
header { background:#24292f; color:#fff; padding:22px 0 18px; }
header h1 { margin:0 0 4px; font-size:26px; font-weight:600; }
header .sub { color:#c9d1d9; font-size:14px; }
.wrap { max-width:1180px; margin:0 auto; padding:0 28px; }
nav { background:var(--bg); border-bottom:1px solid var(--line); padding:8px 0;
      position:sticky; top:0; z-index:2; }
nav a { margin-right:16px; font-size:14px; white-space:nowrap; }
a { color:var(--accent); text-decoration:none; }
a:hover { text-decoration:underline; }
section { padding:14px 0 22px; border-bottom:1px solid var(--line); }
h2 { font-size:21px; margin:18px 0 8px; font-weight:600; }
h3 { font-size:16px; margin:18px 0 6px; font-weight:600; }
p { margin:6px 0 10px; }
.note { color:var(--muted); font-size:13.5px; }
code { font:13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono",
       monospace; background:var(--bg); padding:1px 5px; border-radius:4px; }
pre { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:10px 12px;
      overflow-x:auto; }
pre code { background:none; padding:0; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(170px, 1fr)); gap:12px;
         margin:10px 0 14px; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 14px; background:#fff; }
.card .v { font-size:24px; font-weight:600; }
.card .k { color:var(--muted); font-size:13px; }
.card .d { color:var(--muted); font-size:12.5px; }
.pills { margin:10px 0 2px; }
.pill { display:inline-block; border-radius:999px; padding:2px 11px; margin:3px 6px 3px 0;
        font-size:13.5px; border:1px solid; }
.pill.ok { color:var(--ok); border-color:#8dd6a0; background:#edfbf0; }
.pill.bad { color:var(--bad); border-color:#f5a3a8; background:#fff0f0; }
.pill.miss { color:var(--warn); border-color:#e5c46b; background:#fff8e1; }
table { border-collapse:collapse; font-size:13.5px; margin:6px 0 12px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left;
         vertical-align:top; }
th { background:var(--bg); font-weight:600; position:sticky; top:0; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
tr:nth-child(even) td { background:#fbfcfd; }
.scroll { max-height:430px; overflow-y:auto; border:1px solid var(--line); border-radius:6px;
          display:inline-block; max-width:100%; }
.scroll table { margin:0; }
.missing { border-left:4px solid #d4a72c; background:#fff8e1; padding:8px 12px; margin:8px 0;
           border-radius:0 6px 6px 0; }
.error { border-left:4px solid var(--bad); background:#fff0f0; padding:8px 12px; margin:8px 0;
         border-radius:0 6px 6px 0; }
.dot { display:inline-block; width:10px; height:10px; border-radius:50%; margin-right:4px; }
.dot.ok { background:var(--ok); } .dot.bad { background:var(--bad); }
.okt { color:var(--ok); font-weight:600; } .badt { color:var(--bad); font-weight:600; }
img.plot { max-width:100%; border:1px solid var(--line); border-radius:6px; margin:6px 0; }
ul.files { margin:4px 0 10px; padding-left:20px; }
ul.files li { margin:2px 0; }
footer { color:var(--muted); font-size:12.5px; padding:16px 0 30px; }
"""


# ----------------------------------------------------------------------------- helpers


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fmt(value: Any, digits: int = 2, suffix: str = "") -> str:
    """A number for the page; '—' for anything that is not one."""
    v = _num(value)
    if v is None:
        return "—"
    if math.isinf(v):
        return ("∞" if v > 0 else "−∞") + suffix
    if math.isnan(v):
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}{suffix}"
    return f"{v:,.{digits}f}{suffix}"


def _finite(value: Any) -> float | None:
    v = _num(value)
    return v if v is not None and math.isfinite(v) else None


def _listify(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def _log2(value: Any) -> int | float | None:
    v = _num(value)
    if v is None or v <= 0 or not math.isfinite(v):
        return None
    e = math.log2(v)
    return int(round(e)) if abs(e - round(e)) < 1e-9 else e


def _span(values: Sequence[Any]) -> str:
    """One value, or 'lo..hi' for a per-channel list."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    lo, hi = min(vals), max(vals)
    show = (lambda v: str(v)) if all(isinstance(v, int) for v in vals) else (
        lambda v: f"{v:.3g}")
    return show(lo) if lo == hi else f"{show(lo)}..{show(hi)}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = (),
           scroll: bool = False) -> str:
    """An HTML table; cells are trusted HTML (escape before), `numeric` column indices
    are right-aligned."""
    num = set(numeric)
    head = "".join(f'<th class="num">{h}</th>' if i in num else f"<th>{h}</th>"
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        body.append("<tr>" + "".join(
            f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>"
            for i, c in enumerate(row)) + "</tr>")
    out = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{out}</div>' if scroll else out


def _card(value: str, key: str, detail: str = "") -> str:
    d = f'<div class="d">{detail}</div>' if detail else ""
    return f'<div class="card"><div class="v">{value}</div><div class="k">{key}</div>{d}</div>'


def _schema_of(path: Path) -> dict[str, Any] | None:
    """The declared schema of a file the page checks in full: report.json (its numbers
    are the headline). The other files (manifest, layout, verify, bench, test results)
    are read as bounded JSON and the page shows what it finds, key by key; the
    commands that consume them validate them in full."""
    from cosim.quant.schema import REPORT_SCHEMA

    return REPORT_SCHEMA if path.name == "report.json" else None


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(data, None), or (None, 'missing' / 'unreadable (why)'): a regular file of bounded
    size, bounded JSON, report.json checked against its schema; the page shows a problem
    instead of a number it cannot trust."""
    from cosim.quant.formats import PackageError
    from cosim.quant.schema import read_json

    if not os.path.lexists(path):
        return None, "missing"
    try:
        return read_json(path, _schema_of(path), "JSON"), None
    except PackageError as exc:
        return None, f"unreadable ({exc.message})"


def _json_safe(value: Any) -> Any:
    """Non-finite floats become None (summary.json stays standard JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class _Ctx:
    build: Path
    out: Path
    waves: Path | None
    project: Mapping[str, Any] | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def sim_test(self) -> str:
        """The testbench test whose summaries section 6 shows (the project's; default
        WholeNetworkTest)."""
        return str((self.project or {}).get("test") or "WholeNetworkTest")
    summary: dict[str, Any] = field(default_factory=dict)

    def show(self, path: Path) -> str:
        """A path as a person types it: relative to the working directory when inside."""
        try:
            return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
        except ValueError:
            return str(Path(os.path.abspath(path)))

    def href(self, path: Path) -> str:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(self.out))
        href = Path(rel).as_posix()
        if path.is_dir() and not href.endswith("/"):
            href += "/"
        return html.escape(href.replace(" ", "%20"), quote=True)

    def link(self, path: Path, text: str | None = None) -> str:
        """A relative link if `path` exists, else the name marked missing."""
        label = _esc(text if text is not None else self.show(path))
        if path.exists():
            return f'<a href="{self.href(path)}">{label}</a>'
        return f'{label} <span class="note">(missing)</span>'

    def cmd(self, key: str) -> str:
        """The command that makes a missing artifact (a project's run: cosim run)."""
        if self.project and self.project.get("command") and key != "bench":
            return str(self.project["command"])
        pkg, gold = self.show(self.build / "package"), self.show(self.build / "golden")
        return {
            "package": f".venv/bin/cosim package --out {pkg} -q",
            "golden": f".venv/bin/cosim golden --package {pkg} --out {gold}",
            "verify": f".venv/bin/cosim golden-verify --package {pkg} --out {gold} -q",
            "sim": ".venv/bin/python -m pytest -q tb/test_uvm.py -k WholeNetworkTest",
            "bench": "make bench",
            "compute": ".venv/bin/python -m pytest -q tb/test_compute.py -k whole_network",
            "waves": "WAVES=1 .venv/bin/python -m pytest -q tb/test_sim_smoke.py -k gtkw",
        }[key]

    def absent(self, path: Path, problem: str, key: str, what: str = "") -> str:
        """The note of a missing or unreadable artifact, with the command that makes it."""
        self.missing.append(self.show(path))
        cls = "missing" if problem == "missing" else "error"
        label = "Missing" if problem == "missing" else "Unreadable"
        why = "" if problem == "missing" else f" {_esc(problem)}."
        extra = f" {what}" if what else ""
        return (f'<div class="{cls}"><b>{label}:</b> <code>{_esc(self.show(path))}</code>.'
                f'{why}{extra} Produce it with <code>{_esc(self.cmd(key))}</code></div>')


# ----------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _layer_axis(ax: Any, names: Sequence[str]) -> None:
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _kind_legend(ax: Any, kinds: Iterable[str], loc: str = "upper right") -> None:
    from matplotlib.patches import Patch

    shown = [k for k in KIND_COLORS if k in set(kinds)]
    if shown:
        ax.legend(handles=[Patch(color=KIND_COLORS[k], label=k) for k in shown], fontsize=8,
                  loc=loc, ncol=len(shown), framealpha=0.95)


def _plot_quant_error(path: Path, layers: Sequence[Mapping[str, Any]],
                      sqnr: Mapping[str, float] | None) -> None:
    plt = _pyplot()
    names = [layer["name"] for layer in layers]
    kinds = [layer.get("kind", "") for layer in layers]
    colors = [KIND_COLORS.get(k, "#8c8c8c") for k in kinds]
    rows = 2 if sqnr else 1
    fig, axes = plt.subplots(rows, 1, figsize=(12, 2.4 * rows + 2.4), sharex=True,
                             gridspec_kw={"height_ratios": [2.6, 1][:rows]})
    axes = list(axes) if rows > 1 else [axes]
    if sqnr:
        ax = axes[0]
        values = [sqnr.get(n) for n in names]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        top = max(finite) * 1.18 + 1 if finite else 10.0
        heights = [0.0 if v is None or math.isnan(v) else min(max(v, 0.0), top)
                   for v in values]
        ax.bar(range(len(names)), heights, color=colors, width=0.75)
        for i, v in enumerate(values):
            if v is not None and math.isinf(v) and v > 0:
                ax.text(i, top, "∞", ha="center", va="bottom", fontsize=8)
        if finite:
            med = statistics.median(finite)
            ax.axhline(med, color="#333333", linewidth=0.8, linestyle="--")
            ax.text(-0.4, med, f"median {med:.1f} dB", va="center", ha="left", fontsize=8,
                    color="#333333", bbox={"facecolor": "white", "edgecolor": "#999999",
                                           "boxstyle": "round,pad=0.2"})
        ax.set_ylabel("SQNR (dB)")
        ax.set_ylim(0, top + 2)
        ax.set_title("int8 output vs float output per weighted layer (end to end; higher is "
                     "better)", fontsize=10, loc="left")
        _layer_axis(ax, names)
        _kind_legend(ax, kinds)
    ax = axes[-1]
    sat = [int(layer.get("bias_saturated") or 0) for layer in layers]
    ax.bar(range(len(names)), sat, color=["#cf222e" if s else "#8c8c8c" for s in sat],
           width=0.75)
    ax.set_ylabel("saturated\nbiases")
    ax.set_ylim(0, max(max(sat, default=0), 1) * 1.25)
    ax.yaxis.get_major_locator().set_params(integer=True)
    total = sum(sat)
    ax.set_title(f"int16 bias values saturated per layer (total {total})"
                 + ("; none saturated" if total == 0 else ""), fontsize=10, loc="left")
    _layer_axis(ax, names)
    if not sqnr:
        _kind_legend(ax, kinds)
    fig.tight_layout()
    _save(fig, path)


def _plot_shifts(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    plt = _pyplot()
    names = [r["name"] for r in rows]
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(12, 6.6), sharex=True,
                                 gridspec_kw={"height_ratios": [1.3, 1]})
    hi = [max(r["n"]) if r["n"] else 0 for r in rows]
    lo = [min(r["n"]) if r["n"] else 0 for r in rows]
    ax.bar(range(len(names)), hi, color=[KIND_COLORS.get(r["kind"], "#8c8c8c") for r in rows],
           width=0.75)
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        if a != b:
            ax.plot([i, i], [a, b], color="#333333", linewidth=1.2)
            ax.plot([i], [a], marker="_", color="#333333")
        ax.text(i, b, str(b), ha="center", va="bottom" if b >= 0 else "top", fontsize=6.5)
    ax.axhline(0, color="#555555", linewidth=0.7)
    ax.set_ylabel("shift n")
    ax.set_title("requantization shift n = log2(y_scale / (x_scale · w_scale)) per weighted "
                 "layer (n ≤ 0: left shift)", fontsize=10, loc="left")
    top = max(hi + [0]) * 1.3 + 1
    ax.set_ylim(min(lo + [0]) - 1, top)
    _layer_axis(ax, names)
    _kind_legend(ax, [r["kind"] for r in rows], loc="upper left")
    for key, label, style in (("x", "input x", "o-"), ("w", "weight w", "s-"),
                              ("y", "output y", "^-")):
        vals = [statistics.mean(r[key]) if r[key] else float("nan") for r in rows]
        bx.plot(range(len(names)), vals, style, markersize=3, linewidth=1, label=label)
    bx.set_ylabel("log2(scale)")
    bx.set_title("scale exponents (all scales are powers of two; per-channel weights: mean)",
                 fontsize=10, loc="left")
    low = min((min(r[k]) for r in rows for k in ("x", "w", "y") if r[k]), default=0)
    high = max((max(r[k]) for r in rows for k in ("x", "w", "y") if r[k]), default=0)
    bx.set_ylim(low - 0.25 * (high - low) - 1.5, high + 0.5)
    bx.legend(fontsize=8, ncol=3, loc="lower left")
    _layer_axis(bx, names)
    fig.tight_layout()
    _save(fig, path)


# ----------------------------------------------------------------------------- sections


def _header(ctx: _Ctx, report: Any, manifest: Any, verify: Any, sims: Mapping[str, Any]) -> str:
    model = manifest.get("model", {}) if isinstance(manifest, dict) else {}
    data = manifest.get("data", {}) if isinstance(manifest, dict) else {}
    parts = []
    if model:
        shape = "x".join(str(v) for v in model.get("input_shape", []))
        parts.append(f"{_esc(model.get('arch', '?'))}, {_esc(model.get('num_classes', '?'))} "
                     f"classes, input {_esc(shape)}")
    if data:
        parts.append(f"data: {_esc(data.get('name', '?'))}")
    accel = ctx.summary.get("accelerator")
    if accel:
        parts.append(f"accelerator <b>{_esc(accel)}</b>")
    if ctx.project:
        parts.append(f"project <b>{_esc(ctx.project.get('name', '?'))}</b>")
        top = (ctx.project.get("rtl") or {}).get("top")
        if top:
            parts.append(f"RTL top <code>{_esc(top)}</code>")
    parts.append(f"build directory <code>{_esc(ctx.show(ctx.build))}</code>")
    pills = []
    if isinstance(report, dict):
        pills.append(('ok', f"int8 top-1 {_fmt(report.get('int8_top1'), 2, '%')} "
                      f"(float {_fmt(report.get('float_top1'), 2, '%')})"))
        frac = report.get("rebuild_identical_fraction")
        pills.append(("ok" if frac == 1.0 else "bad",
                      f"rebuild identical {_fmt(_num(frac) and 100 * frac, 2, '%')}"))
    else:
        pills.append(("miss", "package report missing"))
    if isinstance(verify, dict) and isinstance(verify.get("layers"), list):
        good = sum(1 for x in verify["layers"] if x.get("identical_fraction") == 1.0)
        pills.append(("ok" if good == len(verify["layers"]) else "bad",
                      f"golden model: {good}/{len(verify['layers'])} layers identical"))
    else:
        pills.append(("miss", "golden verification missing"))
    sq = ctx.summary.get("sqnr_min_db")
    if sq is not None:
        pills.append(("ok", f"layer SQNR ≥ {_fmt(sq, 1, ' dB')} (median "
                      f"{_fmt(ctx.summary.get('sqnr_median_db'), 1, ' dB')})"))
    if sims:
        for sim, res in sims.items():
            ok = res.get("passed", True) and res.get("mismatches") == 0
            pills.append(("ok" if ok else "bad",
                           f"{sim}: {_fmt(res.get('mismatches'))} mismatches in "
                           f"{_fmt(res.get('words_checked'))} words"))
    else:
        pills.append(("miss", "no simulation results"))
    pill_html = "".join(f'<span class="pill {c}">{t}</span>' for c, t in pills)
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    nav = "".join(f'<a href="#{a}">{_esc(t)}</a>' for a, t in SECTIONS)
    return (f'<header><div class="wrap"><h1>cnn-cosim run report</h1>'
            f'<div class="sub">{" · ".join(parts)} · generated {_esc(when)}</div>'
            f'<div class="pills">{pill_html}</div></div></header>'
            f'<nav><div class="wrap">{nav}</div></nav>')


def _section_accuracy(ctx: _Ctx, report: Any, problem: str | None, manifest: Any) -> str:
    path = ctx.build / "package" / "report.json"
    out = ['<p>The float network and the int8 network (po2 scales, every rescale a shift) '
           'on the package\'s test split, from '
           f'{ctx.link(path)}.</p>']
    if problem:
        out.append(ctx.absent(path, problem, "package"))
        return "".join(out)
    s = ctx.summary
    for key in ("float_top1", "int8_top1", "top1_drop", "top1_agreement", "logit_sqnr_db",
                "rebuild_identical_fraction", "weights", "weighted_layers", "bias_saturated",
                "quantize_seconds", "export_seconds"):
        s[key] = report.get(key)
    split = report.get("test_split", "test split")
    cards = [
        _card(_fmt(report.get("float_top1"), 2, "%"), "float top-1", _esc(split)),
        _card(_fmt(report.get("int8_top1"), 2, "%"), "int8 top-1",
              f"drop {_fmt(report.get('top1_drop'), 2)} points"),
        _card(_fmt(report.get("top1_agreement"), 2, "%"), "top-1 agreement",
              "same class, float vs int8"),
        _card(_fmt(report.get("logit_sqnr_db"), 1, " dB"), "logit SQNR",
              "int8 logits vs float logits"),
        _card(_fmt(report.get("weights")), "int8 weights",
              f"{_fmt(report.get('weighted_layers'))} weighted layers"),
        _card(_fmt(report.get("bias_saturated")), "int16 biases saturated", "at export"),
    ]
    out.append(f'<div class="cards">{"".join(cards)}</div>')
    rebuild = report.get("rebuild") if isinstance(report.get("rebuild"), dict) else {}
    frac = report.get("rebuild_identical_fraction", rebuild.get("identical_fraction"))
    ok = frac == 1.0
    out.append("<h3>Rebuild check</h3><p>The int8 model rebuilt from the package's text files "
               "alone, compared with the reference model "
               "(<code>reference_model.safetensors</code>) "
               f"on the same images: <span class=\"{'okt' if ok else 'badt'}\">"
               f"{_fmt(_num(frac) and 100 * frac, 4, '%')} identical</span>.</p>")
    if rebuild:
        out.append(_table(
            ["images", "output values", "identical", "identical fraction",
             "top-1 reference", "top-1 rebuilt", "top-1 agreement"],
            [[_fmt(rebuild.get("images")), _fmt(rebuild.get("elements")),
              _fmt(rebuild.get("identical_elements")),
              _fmt(rebuild.get("identical_fraction"), 6),
              _fmt(rebuild.get("top1_reference"), 2, "%"),
              _fmt(rebuild.get("top1_rebuilt"), 2, "%"),
              _fmt(rebuild.get("top1_agreement"), 2, "%")]],
            numeric=range(7)))
    q = manifest.get("quantization", {}) if isinstance(manifest, dict) else {}
    if q:
        settings = [("method", q.get("method")), ("weights", q.get("weights")),
                    ("weight range", q.get("weight_range")),
                    ("per channel", q.get("per_channel")), ("CLE", q.get("cle")),
                    ("calibration images", q.get("calibration_images")),
                    ("QAT epochs", q.get("qat_epochs")), ("engine", q.get("engine"))]
        out.append("<h3>How it was quantized</h3>" + _table(
            ["setting", "value"], [[k, _esc(v)] for k, v in settings if v is not None]))
    out.append(f'<p class="note">Quantize {_fmt(report.get("quantize_seconds"), 1, " s")}, '
               f'export {_fmt(report.get("export_seconds"), 1, " s")}.</p>')
    return "".join(out)


def _weighted(manifest: Any) -> list[dict[str, Any]]:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("layers"), list):
        return []
    return [x for x in manifest["layers"]
            if isinstance(x, dict) and x.get("op") in ("conv2d", "linear")]


def _section_quant_error(ctx: _Ctx, manifest: Any, mproblem: str | None,
                         sqnr: list[dict[str, Any]] | None, sqnr_note: str) -> str:
    mpath = ctx.build / "package" / "manifest.json"
    out = ["<p>How far each weighted layer's int8 output is from the float network's output "
           "at that layer. The int8 codes come from the golden integer model "
           "(<code>golden.infer</code>, bit-exact with PyTorch), dequantized with the layer's "
           "output scale and zero point; the float outputs from the package's own float "
           "weights (<code>params_float/</code>: BatchNorm folded, CLE applied), after the "
           "layer's ReLU. Each network is fed its own earlier layers, so the error is end to "
           "end. SQNR = 10·log10(Σf² / Σ(q − f)²).</p>"]
    if mproblem:
        out.append(ctx.absent(mpath, mproblem, "package"))
        return "".join(out)
    layers = _weighted(manifest)
    by_name = {r["name"]: r.get("sqnr_db") for r in sqnr or []}
    values = [v for v in (_num(by_name.get(x["name"])) for x in layers) if v is not None]
    if sqnr:
        finite = [v for v in values if not math.isnan(v)]
        low = min(finite) if finite else None
        worst = next((x["name"] for x in layers if by_name.get(x["name"]) == low), None)
        med = statistics.median(finite) if finite else None
        ctx.summary.update(sqnr_min_db=low, sqnr_median_db=med, sqnr_min_layer=worst,
                           sqnr_images=(sqnr[0].get("images") if sqnr else None),
                           sqnr_layers=len(values))
        out.append('<div class="cards">'
                   + _card(_fmt(low, 1, " dB"), "lowest layer SQNR", _esc(worst or ""))
                   + _card(_fmt(med, 1, " dB"), "median layer SQNR",
                           f"{len(values)} layers")
                   + _card(_fmt(max(finite) if finite else None, 1, " dB"),
                           "highest layer SQNR")
                   + _card(_fmt(sqnr[0].get("images")), "test images used")
                   + "</div>")
        if sqnr_note:
            out.append(f'<p class="note">{sqnr_note}</p>')
    else:
        out.append(f'<div class="error"><b>SQNR not computed:</b> {sqnr_note}</div>')
    if not layers:
        out.append('<div class="error">The manifest lists no weighted layers.</div>')
        return "".join(out)
    ctx.summary["bias_saturated_layers"] = {x["name"]: int(x.get("bias_saturated") or 0)
                                            for x in layers}
    png = ctx.out / "quant_error.png"
    _plot_quant_error(png, layers, {k: v for k, v in by_name.items() if v is not None}
                      if sqnr else None)
    out.append(f'<img class="plot" src="{ctx.href(png)}" alt="SQNR and bias saturation per '
               'layer">')
    rows = []
    for i, x in enumerate(layers):
        sat = int(x.get("bias_saturated") or 0)
        channels = _listify(x.get("bias_shape", [None]))[0]
        rows.append([i, _esc(x["name"]), _esc(x.get("kind", x.get("op"))),
                     _fmt(by_name.get(x["name"]), 2),
                     (f'<span class="badt">{sat}</span>' if sat else "0")
                     + (f" / {channels}" if channels else "")])
    out.append("<h3>Per layer</h3>" + _table(
        ["#", "layer", "kind", "SQNR (dB)", "biases saturated / channels"], rows,
        numeric=(0, 3, 4), scroll=True))
    return "".join(out)


def _shift_rows(layers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for x in layers:
        w = x.get("weight", {}) if isinstance(x.get("weight"), dict) else {}
        rows.append({
            "name": x["name"], "kind": x.get("kind", x.get("op", "")),
            "shape": x.get("weight_shape", []),
            "x": [e for e in [_log2(x.get("input", {}).get("scale"))] if e is not None],
            "w": [e for e in (_log2(v) for v in _listify(w.get("scale"))) if e is not None],
            "y": [e for e in [_log2(x.get("output", {}).get("scale"))] if e is not None],
            "n": [int(v) for v in _listify(x.get("shift")) if _num(v) is not None],
            "relu": x.get("relu"),
        })
    return rows


def _section_shifts(ctx: _Ctx, manifest: Any, mproblem: str | None) -> str:
    mpath = ctx.build / "package" / "manifest.json"
    out = ["<p>Every scale is a power of two, so each weighted layer requantizes its int32 "
           "accumulator with one arithmetic shift: y = clamp(round((acc + bias) / 2<sup>n"
           "</sup>) + zp<sub>y</sub>) with n = e<sub>y</sub> − e<sub>x</sub> − e<sub>w</sub> "
           "(scale = 2<sup>e</sup>). The exponents come from the manifest "
           f"({ctx.link(mpath)}); the shifts are also in "
           f"{ctx.link(ctx.build / 'package' / 'params_quant_linear' / 'scaling_factor.hex')}"
           ".</p>"]
    if mproblem:
        out.append(ctx.absent(mpath, mproblem, "package"))
        return "".join(out)
    rows = _shift_rows(_weighted(manifest))
    if not rows:
        out.append('<div class="error">The manifest lists no weighted layers.</div>')
        return "".join(out)
    all_n = [n for r in rows for n in r["n"]]
    ctx.summary["shift_min"] = min(all_n) if all_n else None
    ctx.summary["shift_max"] = max(all_n) if all_n else None
    png = ctx.out / "shifts.png"
    _plot_shifts(png, rows)
    out.append(f'<img class="plot" src="{ctx.href(png)}" alt="shift exponent per layer">')
    table = [[i, _esc(r["name"]), _esc(r["kind"]), _esc("×".join(str(v) for v in r["shape"])),
              _span(r["x"]), _span(r["w"]), _span(r["y"]), f"<b>{_span(r['n'])}</b>",
              "yes" if r["relu"] else ""]
             for i, r in enumerate(rows)]
    out.append(f"<p>n ranges from {_fmt(ctx.summary['shift_min'])} to "
               f"{_fmt(ctx.summary['shift_max'])}.</p>")
    out.append(_table(["#", "layer", "kind", "weight shape", "e<sub>x</sub>", "e<sub>w</sub>",
                       "e<sub>y</sub>", "n", "ReLU"], table, numeric=(0, 4, 5, 6, 7),
                      scroll=True))
    return "".join(out)


def _regions_from_csv(path: Path) -> list[dict[str, Any]]:
    regions: dict[str, dict[str, Any]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            r = regions.setdefault(row["region"], {"name": row["region"], "base": None,
                                                   "end": 0, "used": 0})
            base, end = int(row["base"]), int(row["end"])
            r["base"] = base if r["base"] is None else min(r["base"], base)
            r["end"] = max(r["end"], end)
            r["used"] += int(row["words"])
    return list(regions.values())


def _section_memory(ctx: _Ctx) -> str:
    gdir = ctx.build / "golden"
    layout, problem = _read_json(gdir / "layout.json")
    png = gdir / "memory_map.png"
    out = ["<p>Where every layer's weights, biases and record sit in the accelerator's "
           f"parameter memory, from {ctx.link(gdir / 'layout.json')} and "
           f"{ctx.link(gdir / 'address_map.md')} (per-segment rows: "
           f"{ctx.link(gdir / 'address_map.csv')}).</p>"]
    regions: list[dict[str, Any]] = []
    if isinstance(layout, dict):
        cfg = layout.get("config", {})
        regions = [r for r in layout.get("regions", []) if isinstance(r, dict)]
        accel = layout.get("accelerator") or (cfg.get("accelerator")
                                              if isinstance(cfg, dict) else None)
        if isinstance(accel, dict) and accel.get("name"):
            ctx.summary["accelerator"] = accel["name"]
            out.append(f"<p>Accelerator <b>{_esc(accel['name'])}</b>"
                       + (f" (file sha256 <code>{_esc(str(accel.get('sha256'))[:16])}</code>)"
                          if accel.get("sha256") else "") + ".</p>")
        ctx.summary.update(memory_depth=layout.get("depth"), used_words=layout.get("used_words"),
                           word_bits=cfg.get("word_bits"))
        stream = layout.get("stream", {}) if isinstance(layout.get("stream"), dict) else {}
        out.append('<div class="cards">'
                   + _card(_fmt(layout.get("depth")), "memory depth (words)",
                           f"{_fmt(layout.get('addr_bits'))} address bits")
                   + _card(_fmt(layout.get("used_words")), "words stored",
                           f"{_fmt(cfg.get('word_bits'))}-bit words")
                   + _card(_fmt(stream.get("words")), "stream words",
                           f"{_fmt(stream.get('segments'))} segments")
                   + "</div>")
        if cfg:
            out.append("<p>Layout: " + ", ".join(f"{_esc(k)} <code>{_esc(v)}</code>"
                                                 for k, v in cfg.items()) + ".</p>")
    else:
        csv_path = gdir / "address_map.csv"
        if csv_path.is_file():
            try:
                regions = _regions_from_csv(csv_path)
            except (OSError, KeyError, ValueError) as exc:
                out.append(f'<div class="error">address_map.csv unreadable: {_esc(exc)}</div>')
        out.append(ctx.absent(gdir / "layout.json", problem or "missing", "golden",
                              "Regions below come from address_map.csv." if regions else ""))
    if png.is_file():
        atomic_write_bytes(ctx.out / "memory_map.png", png.read_bytes())
        out.append(f'<img class="plot" src="{ctx.href(ctx.out / "memory_map.png")}" '
                   'alt="parameter memory map">')
    else:
        out.append(ctx.absent(png, "missing", "golden"))
    if regions:
        bits = _num(layout.get("addr_bits")) if isinstance(layout, dict) else None
        width = max(5, (int(bits or 0) + 3) // 4)
        rows = []
        for r in regions:
            base, end, used = r.get("base"), r.get("end"), r.get("used")
            span = end - base if isinstance(base, int) and isinstance(end, int) else None
            fill = 100 * used / span if span and isinstance(used, int) else None
            rows.append([_esc(r.get("name")),
                         f"<code>0x{base:0{width}x}</code>" if isinstance(base, int) else "—",
                         f"<code>0x{end:0{width}x}</code>" if isinstance(end, int) else "—",
                         _fmt(span), _fmt(used), _fmt(fill, 1, "%")])
        out.append("<h3>Regions</h3>" + _table(
            ["region", "base", "end (exclusive)", "span (words)", "used (words)", "filled"],
            rows, numeric=(3, 4, 5)))
        ctx.summary["regions"] = {r.get("name"): r.get("used") for r in regions}
    return "".join(out)


def _section_golden(ctx: _Ctx, verify: Any, problem: str | None) -> str:
    path = ctx.build / "golden" / "verify.json"
    out = ["<p>The NumPy integer model (package files only) against PyTorch's quantized model "
           "rebuilt from the same files, every node's integer output compared on real test "
           f"images, from {ctx.link(path)}.</p>"]
    if problem:
        out.append(ctx.absent(path, problem, "verify"))
        return "".join(out)
    layers = [x for x in verify.get("layers", []) if isinstance(x, dict)]
    good = sum(1 for x in layers if x.get("identical_fraction") == 1.0)
    images, images_224 = verify.get("images"), verify.get("images_224")
    ctx.summary.update(layers_identical=good, layers_total=len(layers), images=images,
                       images_224=images_224, golden_identical=verify.get("identical"),
                       golden_top1_agreement=verify.get("top1_agreement"),
                       golden_reference_identical=verify.get("reference_identical"))
    all_ok = good == len(layers) and len(layers) > 0
    cls = "okt" if all_ok else "badt"
    out.append(f'<p style="font-size:17px"><span class="{cls}">{good} of {len(layers)} layers '
               f"identical</span> on {_fmt(images)} images incl. {_fmt(images_224)} at 224x224 "
               f"(rounding <code>{_esc(verify.get('rounding', '?'))}</code>).</p>")
    ref = verify.get("reference_identical")
    out.append('<div class="cards">'
               + _card(_fmt(verify.get("top1_agreement"), 2, "%"), "top-1 agreement",
                       "golden vs PyTorch")
               + _card(_fmt(verify.get("top1_golden"), 2, "%"), "golden top-1",
                       "against the labels")
               + _card(f'<span class="{"okt" if ref else "badt"}">{"yes" if ref else "no"}'
                       "</span>", "rebuilt = reference_model.safetensors")
               + _card(_fmt((verify.get("seconds") or {}).get("total"), 1, " s"),
                       "verification time")
               + "</div>")
    bad = [x for x in layers if x.get("identical_fraction") != 1.0]
    if bad:
        out.append("<p class=\"badt\">Differing layers: "
                   + ", ".join(_esc(x.get("name")) for x in bad[:12])
                   + (" …" if len(bad) > 12 else "") + "</p>")
    rows = []
    for i, x in enumerate(layers):
        same = x.get("identical_fraction") == 1.0
        rows.append([i, f'<span class="dot {"ok" if same else "bad"}"></span>',
                     _esc(x.get("name")), _esc(x.get("op")), _fmt(x.get("elements")),
                     _fmt(x.get("identical_fraction"), 6), _fmt(x.get("max_abs_diff"), 0)])
    out.append(_table(["#", "", "layer", "op", "values compared", "identical fraction",
                       "max |diff|"], rows, numeric=(0, 4, 5, 6), scroll=True))
    return "".join(out)


def _sim_results(build: Path, test: str = "WholeNetworkTest"
                 ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """`test`'s summaries by simulator, and problems with unreadable ones."""
    sims, problems = {}, []
    for path in sorted((build / "test-results").glob(f"{test}-*.json")):
        data, problem = _read_json(path)
        if problem or not isinstance(data, dict):
            problems.append(f"{path.name}: {problem or 'not an object'}")
            continue
        sim = str(data.get("sim") or path.stem.split("-", 1)[-1])
        sims[sim] = data | {"_path": path}
    return sims, problems


def _section_simulation(ctx: _Ctx, sims: Mapping[str, dict[str, Any]],
                        problems: Sequence[str], word_bits: Any) -> str:
    results = ctx.build / "test-results"
    test = ctx.sim_test
    stimulus = (ctx.project or {}).get("stimulus") or "stream"
    how = ("the whole network's parameter stream is driven in" if stimulus == "stream" else
           f"the parameters reach it over the {_esc(stimulus)} path")
    out = [f"<p>The loader RTL under the pyuvm testbench ({_esc(test)}): {how} and every "
           "stored word and address is checked against the golden image, from <code>"
           f"{_esc(ctx.show(results))}/{_esc(test)}-&lt;sim&gt;.json</code>.</p>"]
    for p in problems:
        out.append(f'<div class="error"><b>Unreadable:</b> {_esc(p)}</div>')
    bits = _num(word_bits)
    if not sims:
        out.append(ctx.absent(results / f"{test}-<sim>.json", "missing", "sim"))
    wanted = (ctx.project or {}).get("simulators") or SIMULATORS
    for sim in wanted:
        if sims and sim not in sims:
            out.append(ctx.absent(results / f"{test}-{sim}.json", "missing", "sim",
                                  f"No {test} result for {sim}."))
    if sims:
        rows = []
        ctx.summary["simulators"] = {}
        for sim, r in sims.items():
            wps = _num(r.get("words_per_s"))
            kbs = wps * bits / 8 / 1000 if wps is not None and bits else None
            ok = bool(r.get("passed", True)) and r.get("mismatches") == 0
            cov = r.get("coverage_percent")
            cov_txt = results / f"coverage-{test}-{sim}.txt"
            rows.append([
                f"<b>{_esc(sim)}</b>",
                f'<span class="dot {"ok" if ok else "bad"}"></span>'
                + ("pass" if r.get("passed", ok) else "fail"),
                _fmt(r.get("words_expected")), _fmt(r.get("words_checked")),
                f'<span class="{"okt" if r.get("mismatches") == 0 else "badt"}">'
                f'{_fmt(r.get("mismatches"))}</span>',
                _fmt(r.get("wall_s"), 2), _fmt(r.get("words_per_s")), _fmt(kbs, 1),
                (ctx.link(cov_txt, _fmt(cov, 1, "%")) if cov_txt.exists()
                 else _fmt(cov, 1, "%")),
                _fmt(r.get("coverage_holes")), _esc(r.get("seed", "—")),
                ctx.link(r["_path"], "json")])
            ctx.summary["simulators"][sim] = {
                k: r.get(k) for k in ("words_checked", "mismatches", "words_per_s", "wall_s",
                                      "coverage_percent", "passed", "words_expected")
            } | {"kB_per_s": kbs}
        out.append(_table(["simulator", "result", "words expected", "words checked",
                           "mismatches", "wall s", "words/s", "kB/s", "coverage",
                           "holes", "seed", ""], rows, numeric=range(2, 11)))
        note = (f"kB/s = words/s × {int(bits)} bits / 8 / 1000 (word width from layout.json)."
                if bits else "kB/s needs the word width from build/golden/layout.json.")
        first = next(iter(sims.values()))
        out.append(f'<p class="note">{note} Backpressure: '
                   f'<code>{_esc(first.get("backpressure", "?"))}</code>; stream '
                   f'{_fmt(first.get("stream_words"))} words in '
                   f'{_fmt(first.get("segments"))} segments.</p>')
    others = []
    for path in sorted(results.glob("*Test-*.json")):
        if path.name.startswith((f"{test}-", "coverage-")):
            continue
        data, problem = _read_json(path)
        if isinstance(data, dict) and "steps" in data:
            continue  # a compute-engine run: its own section
        if isinstance(data, dict):
            ok = bool(data.get("passed")) and data.get("mismatches", 0) == 0
            others.append([_esc(data.get("test", path.stem)), _esc(data.get("sim", "")),
                           f'<span class="dot {"ok" if ok else "bad"}"></span>'
                           + ("pass" if data.get("passed") else "fail"),
                           _fmt(data.get("words_checked")), _fmt(data.get("mismatches")),
                           _esc(data.get("backpressure", "")),
                           _fmt(data.get("coverage_percent"), 1, "%"),
                           _fmt(data.get("wall_s"), 2), ctx.link(path, "json")])
    if others:
        out.append("<h3>Other testbench runs</h3>" + _table(
            ["test", "simulator", "result", "words checked", "mismatches", "backpressure",
             "coverage", "wall s", ""], others, numeric=(3, 4, 6, 7)))
    bench, bproblem = _read_json(ctx.build / "bench.json")
    out.append("<h3>Benchmarks</h3>")
    if isinstance(bench, dict) and isinstance(bench.get("rows"), list):
        rows = [[_esc(b.get("group", "")), _esc(b.get("name", "")), _fmt(b.get("seconds"), 4),
                 _esc(b.get("baseline", "")), _fmt(b.get("baseline_seconds"), 4),
                 _fmt(b.get("ratio"), 2, "×"), _esc(b.get("detail", ""))]
                for b in bench["rows"] if isinstance(b, dict)]
        out.append(_table(["group", "what", "seconds", "baseline", "baseline s", "ratio",
                           "detail"], rows, numeric=(2, 4, 5)))
        machine = bench.get("machine")
        if isinstance(machine, dict):
            out.append('<p class="note">Machine: ' + ", ".join(
                f"{_esc(k)} {_esc(v)}" for k, v in machine.items()) + "</p>")
        ctx.summary["bench_rows"] = len(rows)
    else:
        out.append(ctx.absent(ctx.build / "bench.json", bproblem or "not a bench table",
                              "bench", "(optional)"))
    return "".join(out)


#: compute-engine test summaries, the most complete first (tb/tests_compute.py)
COMPUTE_TESTS = ("LayerThenChainedTest", "LayerByLayerTest", "ChainedTest")


def _section_compute(ctx: _Ctx) -> str:
    """Per layer of the compute engine's run: cycles, utilization, RTL vs golden
    identical fraction, the first mismatches (tb/tests_compute.py summaries)."""
    results = ctx.build / "test-results"
    found = []
    for test in COMPUTE_TESTS:
        for path in sorted(results.glob(f"{test}-*.json")):
            data, problem = _read_json(path)
            if isinstance(data, dict) and isinstance(data.get("steps"), list):
                found.append((path, data))
        if found:
            break
    if not found:
        return ctx.absent(results / "LayerThenChainedTest-verilator.json", "missing",
                          "compute", "(the compute engine's run)")
    out = ["<p>The reference compute engine (<code>rtl/cnn_compute_engine.sv</code>) under the "
           "pyuvm testbench: every output activation of every layer against the golden model "
           "(hardware arithmetic, docs/arithmetic.md). <i>layer</i>: each layer fed the golden "
           "input; <i>chained</i>: the whole network on the engine's own outputs.</p>"]
    ctx.summary["compute"] = {}
    for path, data in found:
        sim = str(data.get("sim", ""))
        ok = bool(data.get("passed"))
        top1 = data.get("top1") or []
        agree = sum(1 for t in top1 if t.get("golden") == t.get("rtl"))
        out.append(f"<h3>{_esc(data.get('test'))} on {_esc(sim)}: "
                   f'<span class="dot {"ok" if ok else "bad"}"></span>'
                   f"{'pass' if ok else 'fail'}</h3>")
        out.append(f"<p>{_fmt(data.get('codes_identical'))} of {_fmt(data.get('codes_checked'))}"
                   f" codes identical over {_fmt(data.get('steps_checked'))} layer runs; RTL "
                   f"top-1 = golden top-1 on {agree} of {len(top1)} images; rounding "
                   f"<code>{_esc(data.get('rounding'))}</code>; coverage "
                   f"{_fmt(data.get('coverage_percent'), 1, '%')} "
                   f"({len(data.get('coverage_holes') or [])} holes); "
                   f"{ctx.link(path, 'json')}.</p>")
        rows = []
        for r in data["steps"]:
            if r.get("mode") == "chained" and r.get("image", 0) != 0:
                continue
            first = "; ".join(f"c{d['channel']} y{d['y']} x{d['x']}: {d['expected']}→{d['got']}"
                              f" (acc {d.get('accumulator')})" for d in r.get("first", [])[:3])
            good = not (r.get("mismatches") or r.get("padding_errors") or r.get("unknown_words"))
            rows.append([_esc(r.get("mode")), _esc(r.get("name")),
                         _esc(r.get("kind") or r.get("op")), _fmt(r.get("cycles")),
                         _fmt(r.get("macs")), _fmt(100 * (r.get("utilization") or 0), 1, "%"),
                         f'<span class="{"okt" if good else "badt"}">'
                         f'{_fmt(100 * (r.get("identical") or 0), 3, "%")}</span>',
                         _fmt(r.get("mismatches")), _esc(first)])
        out.append(_table(["mode", "layer", "kind", "cycles", "MACs", "utilization",
                           "identical", "mismatches", "first mismatches"], rows,
                          numeric=range(3, 8)))
        ctx.summary["compute"][sim] = {"passed": ok, "codes_checked": data.get("codes_checked"),
                                       "codes_identical": data.get("codes_identical"),
                                       "top1_agree": agree, "images": len(top1)}
    return "".join(out)


def find_waves(build_dir: Path = Path("build")) -> list[Path]:
    """Every recorded wave file build/sim/runs/<sim>/<run>/cnn_param_top.fst, newest first."""
    found = list(Path(build_dir).glob(f"sim/runs/*/*/{WAVES_NAME}"))
    return sorted(found, key=lambda p: (p.stat().st_mtime, str(p)), reverse=True)


def _file_list(ctx: _Ctx, items: Sequence[tuple[Path, str | None, str]]) -> str:
    """<ul> of (path, link text or None for the path, description)."""
    lis = []
    for path, text, what in items:
        desc = f' <span class="note">— {_esc(what)}</span>' if what else ""
        lis.append(f"<li>{ctx.link(path, text)}{desc}</li>")
    return '<ul class="files">' + "".join(lis) + "</ul>"


def _section_files(ctx: _Ctx, manifest: Any) -> str:
    pkg, gdir = ctx.build / "package", ctx.build / "golden"
    quant = pkg / "params_quant_linear"
    out = ["<p>The artifacts behind this page (links open the files; hex files are "
           "<code>$readmemh</code> text, one value per line).</p>"]
    items: list[tuple[Path, str | None, str]] = [
        (pkg, None, "the parameter package folder"),
        (pkg / "manifest.json", None, "every layer: shapes, scales, zero points, shift n, files"),
        (pkg / "report.json", None, "float/int8 top-1 and the rebuild check (section 1)"),
        (quant, None, "int8 weights, int16 biases, qparams per layer (txt and hex)"),
        (pkg / "params_float", None, "the float weights they came from (BN folded, CLE)"),
        (quant / "scaling_factor.hex", None, "shift n of every weighted layer"),
    ]
    weighted = _weighted(manifest)
    for x in weighted[:2] + weighted[-1:]:
        for role, what in (("weight_hex", "int8 weights"), ("bias_int16_hex", "int16 biases")):
            entry = x.get("files", {}).get(role)
            if isinstance(entry, dict) and "path" in entry:
                items.append((pkg / entry["path"], None, f"{what} of {x['name']}"))
    out.append("<h3>Parameter package</h3>" + _file_list(ctx, items))
    golden = [
        ("image.hex", "expected parameter memory image, one word per address"),
        ("stream.hex", "the parameter stream the loader RTL receives"),
        ("stream_tlast.hex", "the stream's end-of-segment flags"),
        ("address_map.md", "regions and segments, readable"),
        ("address_map.csv", "one row per segment"),
        ("layout.json", "the layout the testbench and RTL package are generated from"),
        ("verify.json", "golden model vs PyTorch per layer (section 5)"),
        ("memory_map.png", "the memory map plot (section 4)"),
    ]
    out.append("<h3>Golden layout</h3>"
               + _file_list(ctx, [(gdir / n, None, w) for n, w in golden]))
    out.append("<h3>Waves</h3>")
    waves = [ctx.waves] if ctx.waves is not None else find_waves(ctx.build)
    if not waves:
        out.append(ctx.absent(ctx.build / "sim" / "runs" / "<sim>" / "<run>" / WAVES_NAME,
                              "missing", "waves"))
    else:
        main = waves[0]
        ctx.summary["waves"] = ctx.show(main)
        if not main.exists():
            out.append(ctx.absent(main, "missing", "waves"))
        else:
            out.append(f"<p>{'Given' if ctx.waves is not None else 'Newest'} wave file: "
                       f"{ctx.link(main)} ({_fmt(main.stat().st_size)} bytes). Open it with "
                       f"the signal list of {ctx.link(GTKW_FILE, 'tb/cnn_param.gtkw')}:</p>")
            out.append(f"<pre><code>gtkwave {_esc(ctx.show(main))} "
                       f"{_esc(ctx.show(GTKW_FILE))}</code></pre>")
        if len(waves) > 1:
            out.append("<p>Other wave files:</p><ul class=\"files\">"
                       + "".join(f"<li>{ctx.link(w)}</li>" for w in waves[1:8]) + "</ul>")
    results = ctx.build / "test-results"
    sims = sorted(results.glob(f"{ctx.sim_test}-*.json"))
    sim_items: list[tuple[Path, str | None, str]] = [
        (p, None, f"{ctx.sim_test} testbench summary (section 6)") for p in sims]
    sim_items.append((results, None, "all test results: JUnit XML, coverage reports"))
    if (ctx.build / "bench.json").exists():
        sim_items.append((ctx.build / "bench.json", None, "benchmark table (section 6)"))
    out.append("<h3>Simulation results</h3>" + _file_list(ctx, sim_items))
    return "".join(out)


# ----------------------------------------------------------------------------- entry


def _compute_sqnr(build: Path, images: int) -> tuple[list[dict[str, Any]] | None, str]:
    pkg = build / "package"
    if images <= 0:
        return None, "disabled (sqnr_images=0)."
    if not (pkg / "manifest.json").is_file():
        return None, (f"the package is missing; produce it with "
                      f"<code>.venv/bin/cosim package --out {_esc(pkg)} -q</code>")
    try:
        from cosim.sqnr import layer_sqnr

        rows = layer_sqnr(pkg, images=images)
    except Exception as exc:  # noqa: BLE001 - the page reports any failure
        return None, _esc(f"{type(exc).__name__}: {exc}")
    return rows, (f"Computed on the first {rows[0]['images'] if rows else 0} images of the test "
                  "split by <code>cosim.sqnr.layer_sqnr</code>.")


def build_report(build_dir: Path = Path("build"), out: Path | None = None,
                 waves: Path | None = None, *, sqnr: Sequence[Mapping[str, Any]] | None = None,
                 sqnr_images: int = 32, project: Mapping[str, Any] | None = None) -> Path:
    """Write ``<out>/index.html`` (default out: ``<build_dir>/report``), its PNG plots
    and ``summary.json``; return the path of index.html.

    waves: the FST file to link (default: the newest build/sim/runs/*/*/cnn_param_top.fst).
    sqnr: per-layer SQNR rows ``[{name, sqnr_db, images}]`` to show instead of computing
    them with ``cosim.sqnr.layer_sqnr`` on ``sqnr_images`` test images (0 skips it).
    project: the run's project (cosim.project.Project.describe()): its name, accelerator
    and RTL top are shown in the header and kept in summary.json; the accelerator name
    comes from layout.json when the golden run recorded one.
    """
    build = Path(build_dir)
    out_dir = Path(out) if out is not None else build / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("quant_error.png", "shifts.png", "memory_map.png"):
        (out_dir / stale).unlink(missing_ok=True)
    ctx = _Ctx(build=build, out=out_dir, waves=Path(waves) if waves is not None else None,
               project=dict(project) if project is not None else None)
    if project is not None:
        accel = project.get("accelerator")
        name = accel.get("name") if isinstance(accel, Mapping) else accel
        if name:
            ctx.summary["accelerator"] = name

    report, rproblem = _read_json(build / "package" / "report.json")
    manifest, mproblem = _read_json(build / "package" / "manifest.json")
    if not rproblem and not isinstance(report, dict):
        rproblem = "unreadable (not a JSON object)"
    if not mproblem and not (isinstance(manifest, dict) and isinstance(manifest.get("layers"),
                                                                       list)):
        mproblem = "unreadable (no 'layers' list)"
    verify, vproblem = _read_json(build / "golden" / "verify.json")
    if not vproblem and not (isinstance(verify, dict) and isinstance(verify.get("layers"), list)):
        vproblem = "unreadable (no 'layers' list)"
    layout, _ = _read_json(build / "golden" / "layout.json")
    word_bits = (layout.get("config", {}).get("word_bits")
                 if isinstance(layout, dict) and isinstance(layout.get("config"), dict) else None)
    sims, sim_problems = _sim_results(build, ctx.sim_test)

    if sqnr is not None:
        rows: list[dict[str, Any]] | None = [dict(r) for r in sqnr]
        note = "SQNR values supplied by the caller."
    elif mproblem:
        rows, note = None, "the package manifest is missing."
    else:
        rows, note = _compute_sqnr(build, sqnr_images)

    bodies = {
        "accuracy": _section_accuracy(ctx, report, rproblem, manifest),
        "quant-error": _section_quant_error(ctx, manifest, mproblem, rows, note),
        "shifts": _section_shifts(ctx, manifest, mproblem),
        "memory": _section_memory(ctx),
        "golden": _section_golden(ctx, verify, vproblem),
        "simulation": _section_simulation(ctx, sims, sim_problems, word_bits),
        "compute": _section_compute(ctx),
        "files": _section_files(ctx, manifest if not mproblem else None),
    }
    header = _header(ctx, report if not rproblem else None, manifest if not mproblem else None,
                     verify if not vproblem else None, sims)
    sections = "".join(f'<section id="{a}"><h2>{_esc(t)}</h2>{bodies[a]}</section>'
                       for a, t in SECTIONS)
    missing = sorted(set(ctx.missing))
    foot = ("All artifacts present." if not missing else
            "Missing artifacts: " + ", ".join(f"<code>{_esc(m)}</code>" for m in missing) + ".")
    docs = ctx.link(REPO_ROOT / "docs" / "report.md", "docs/report.md")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>cnn-cosim run report</title><style>{CSS}</style></head><body>"
            f"{header}<main class=\"wrap\">{sections}</main>"
            f"<footer class=\"wrap\">{foot} Written by <code>cosim/report.py</code>; "
            f"what each section shows: {docs}. Numbers are read from the artifacts "
            f"in <code>{_esc(ctx.show(build))}</code>; <code>summary.json</code> next to this "
            f"page holds the headline values.</footer></body></html>\n")
    index = out_dir / "index.html"
    atomic_write_bytes(index, page.encode("utf-8"))

    summary = {"build_dir": ctx.show(build), "generated": _dt.datetime.now().astimezone()
               .isoformat(timespec="seconds")}
    for key in ("float_top1", "int8_top1", "top1_drop", "top1_agreement", "logit_sqnr_db",
                "rebuild_identical_fraction", "layers_identical", "layers_total", "images",
                "images_224", "sqnr_min_db", "sqnr_median_db"):
        summary[key] = ctx.summary.get(key)
    summary.update({k: v for k, v in ctx.summary.items() if k not in summary})
    summary.setdefault("simulators", {})
    if project is not None:
        summary["project"] = _json_safe(dict(project))
    summary["missing"] = missing
    atomic_write_bytes(out_dir / "summary.json",
                       (json.dumps(_json_safe(summary), indent=1) + "\n").encode("utf-8"))
    return index


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - thin wrapper
    from cosim.quant.errors import OneLineArgumentParser, run_command

    parser = OneLineArgumentParser(prog="python -m cosim.report",
                                   description="Write the run report build/report/index.html")
    parser.add_argument("--build", type=Path, default=Path("build"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--waves", type=Path, default=None)
    parser.add_argument("--sqnr-images", type=int, default=32)
    args = parser.parse_args(argv)

    def write() -> int:
        print(build_report(args.build, args.out, args.waves, sqnr_images=args.sqnr_images))
        return 0

    return run_command("python -m cosim.report", write)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

