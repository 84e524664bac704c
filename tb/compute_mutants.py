"""Datapath mutants of the compute engine (rtl/cnn_compute_engine.sv) and their runner.

Each mutant is one realistic arithmetic or addressing bug, made by tb/mutants.py's
text substitution on a copy of the compute top's sources (the pattern must occur
exactly once in cnn_compute_engine.sv; `apply` checks). The killer is the Verilator
LayerByLayerTest of tb/tests_compute.py on the whole network: all 64 steps of the
shipped MobileNetV2 32x32, each fed the golden input, every output code compared
with the golden model (hardware arithmetic). Seed pinned (1; the test is
deterministic anyway). A mutant is killed when the test fails.

Every mutant gets its own run folder (build/mutants/compute/work/<name>: the run's
own act_load/act_dump/stats/param_dump files; COMPUTE_RUN), so two mutants can run
at the same time.

COMPUTE_MUTANTS must all be killed: first on the prepared test image, a survivor
then on a stress image (prepare_stress: a test image with its contrast raised, so
that some outputs saturate at 255, which no shipped test image does), then (when the
runner is given one: `second`) on the STRESS package of tb/compute/stress.py, the
second killer: LayerByLayerTest on that synthetic network (negative, zero and
per-channel shifts, ReLU clamps at zp_y != 0, |acc| > 2^30, one-step pixels, pool
zero point and ties, 16-bit partial sums exceeded). STRESS_KILLED names the HOLES and
NOT_EXERCISED mutants that second killer must kill. HOLES are
realistic bugs the datapath can show but neither stimulus of the shipped network
reaches (testbench holes, with what would kill them). NOT_EXERCISED are realistic bugs the shipped
package cannot reveal (the network never reaches that logic: no per-channel shifts,
no negative shifts, ReLU outputs with zero point 0, ...); each comes with the reason,
and `not_exercised_reasons(program)` re-checks the reason on the package, so a
package that does exercise the logic makes the cheap test fail (move the mutant to
COMPUTE_MUTANTS then).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cosim.tb.mutants import (
    MUTANTS_ROOT,
    Killer,
    Mutant,
    MutantResult,
    apply,
    results_dir,
    run_killer,
    run_mutant,
)

ENGINE = "cnn_compute_engine.sv"
ROOT = MUTANTS_ROOT / "compute"
RESULTS_ROOT = ROOT / "results"
TEST = "LayerByLayerTest"
#: prepared inputs a run only reads (linked into each mutant's work folder)
READ_ONLY = ("param_stream.hex", "descriptors.hex", "param_image.hex", "param_image_mask.hex",
             "program.json", "golden.npz", "coverage.json", "run.json")


def _engine_text() -> str:
    from cosim.tb.sim import RTL_DIR

    path = RTL_DIR / ENGINE
    return path.read_text() if path.is_file() else ""


_TEXT = _engine_text()


def _m(name: str, pattern: str | Sequence[tuple[str, str]], replacement: str | None,
       bug: str) -> Mutant:
    """A datapath mutant of the engine. `pattern` may be a list of (pattern, replacement)
    alternatives (the same bug in successive codings of the engine): the first one that
    occurs exactly once in rtl/cnn_compute_engine.sv is used (none: the first, so that
    `apply` fails loudly)."""
    if isinstance(pattern, str):
        return Mutant(name, ENGINE, pattern, replacement or "", bug, "datapath")
    chosen = next((alt for alt in pattern if _TEXT.count(alt[0]) == 1), pattern[0])
    return Mutant(name, ENGINE, chosen[0], chosen[1], bug, "datapath")


COMPUTE_MUTANTS: tuple[Mutant, ...] = (
    # ---- requantization
    _m("ties_wrong_rule",
       "(ROUND_HALF_EVEN ? q[0] : 1'b1)", "(ROUND_HALF_EVEN ? 1'b1 : q[0])",
       "requantizer tie rule swapped (half-up in a half-even build)"),
    _m("no_rounding",
       "r = q + 64'((rem > half || (rem == half && (ROUND_HALF_EVEN ? q[0] : 1'b1))) ? 1 : 0);",
       "r = q;",
       "requantizer truncates (floor) instead of rounding"),
    _m("sat_high_missing",
       "if (r > 64'sd255) r = 64'sd255;", "",
       "no saturation at 255 (the code wraps)"),
    _m("sat_low_missing",
       "if (r < lo) r = lo;", "",
       "no clamp at the low end (negative results wrap)"),
    _m("out_zp_not_added",
       "r = r + 64'($unsigned(zp));", "",
       "output zero point not added after the shift"),
    # ---- conv / linear operands
    _m("input_zp_not_subtracted",
       [("xi = padded ? 10'sd0 : $signed({2'b00, x[8*i +: 8]}) - $signed({2'b00, zp});",
         "xi = padded ? 10'sd0 : $signed({2'b00, x[8*i +: 8]});"),
        ("$signed({2'b00, a_rdata0[8*i +: 8]}) - $signed({2'b00, zpx});",
         "$signed({2'b00, a_rdata0[8*i +: 8]});")], None,
       "input zero point not subtracted from the activations"),
    _m("padding_code_0",
       [("xi = padded ? 10'sd0 :", "xi = padded ? -$signed({2'b00, zp}) :"),
        ("xs[i] = s1_pad_q ? 10'sd0 :", "xs[i] = s1_pad_q ? -$signed({2'b00, zpx}) :")],
       None,
       "padding filled with code 0 instead of the input zero point"),
    _m("bias_not_sign_extended",
       "logic signed [BIAS_BITS-1:0] bias_q[LANES];",
       "logic [BIAS_BITS-1:0] bias_q[LANES];",
       "bias register unsigned: biases zero-extended, not sign-extended"),
    _m("acc_not_cleared",
       "acc_q[l] <= (s1_first_q ? '0 : acc_q[l]) + term[l];",
       "acc_q[l] <= acc_q[l] + term[l];",
       "accumulator register never cleared (carries the previous pixels' sums)"),
    # ---- addressing
    _m("right_pad_missed",
       "(ix >= $signed(in_w))", "(ix > $signed(in_w))",
       "right padding column not detected (reads the next row's first pixel)"),
    _m("bottom_pad_missed",
       "(iy >= $signed(in_h))", "(iy > $signed(in_h))",
       "bottom padding row not detected (reads the next channel tile's first row)"),
    _m("stride2_right_edge",
       "ix0_q <= ix0_q + $signed(32'(sw));",
       "ix0_q <= ix0_q + $signed(32'(sw)) - "
       "((sw > 8'd1 && ox_q == out_w - 2) ? 32'sd1 : 32'sd0);",
       "strided layers: the last output column's window starts one pixel left"),
    _m("dw_lane_swap",
       [("term[l] = ACC_W'(xs[l] * $signed(wrow_q[8*l +: 8]));",
         "term[l] = ACC_W'(xs[(l < 2) ? 1 - l : l] * $signed(wrow_q[8*l +: 8]));"),
        ("sum = ACC_W'(xs[l] * $signed(wrow_q[8*l +: 8]));",
         "sum = ACC_W'(xs[(l < 2) ? 1 - l : l] * $signed(wrow_q[8*l +: 8]));")], None,
       "depthwise: channels 0 and 1 of every tile mixed (activation lanes swapped)"),
    _m("last_pixel_not_written",
       "fin_v_q <= s1_last_q;",
       "fin_v_q <= s1_last_q && !(s1_oy_q == out_h - 1 && s1_ox_q == out_w - 1);",
       "the last output pixel of each tile is never written"),
    # ---- residual add, pool
    _m("add_ka_kb_swapped",
       "(da <<< ka) + (db <<< kb)", "(da <<< kb) + (db <<< ka)",
       "add: the operands' shifts ka and kb swapped"),
    _m("add_zb_not_subtracted",
       [("db = 64'($signed({1'b0, b}) - $signed({1'b0, zb}));",
         "db = 64'($signed({1'b0, b}));"),
        ("db = 64'($signed({1'b0, a_rdata1[8*l +: 8]}) - $signed({1'b0, zb}));",
         "db = 64'($signed({1'b0, a_rdata1[8*l +: 8]}));")], None,
       "add: the second operand's zero point not subtracted"),
    _m("pool_divisor_plus_1",
       "if (rem >= 33'(divisor)) begin\n                dr_q[l] <= 32'(rem - 33'(divisor));",
       "if (rem >= 33'(divisor) + 33'd1) begin\n"
       "                dr_q[l] <= 32'(rem - 33'(divisor) - 33'd1);",
       "pool: divides by the divisor + 1"),
)

#: realistic bugs the logic can reveal but the stimulus does not: testbench holes,
#: (mutant, what would kill it). Reported (COMPUTE_MUTATION_ALL=1), not asserted.
HOLES: tuple[tuple[Mutant, str], ...] = (
    (_m("partial_sum_16bit",
        [("    return sum;\n  endfunction", "    return ACC_W'(16'(sum));\n  endfunction"),
         ("term[l] = sum;", "term[l] = ACC_W'(16'(sum));")], None,
        "per-cycle adder tree truncated to 16 bits before the accumulator"),
     "a per-cycle partial sum (8 products of one input tile) beyond +-32767: possible "
     "(up to 8 * 255 * 128 = 261120) but never reached by the test or stress image; "
     "needs a targeted layer, e.g. IC = 8, 1x1, a weight row of +127 and input codes 255 "
     "with zero point 0 (8 * 255 * 127 = 259080)"),
)

#: (mutant, why the shipped package cannot kill it): see not_exercised_reasons
NOT_EXERCISED: tuple[tuple[Mutant, str], ...] = (
    (_m("left_shift_missing", "else r = v <<< k;", "else r = v;",
        "shift n < 0: the left shift is missing"),
     "no_negative_shift"),
    (_m("relu_clamp_at_0", "lo = relu ? 64'($unsigned(zp)) : 64'sd0;", "lo = 64'sd0;",
        "ReLU clamps at code 0 instead of the output zero point"),
     "relu_zp_0"),
    (_m("acc_w_31", "parameter int ACC_W = 32", "parameter int ACC_W = 31",
        "accumulator one bit too narrow (31 bits)"),
     "acc_fits_31"),
    (_m("bias_lane_from_tile_lane",
        "bias_q[i] <= p_rdata[BIAS_BITS * ((c0_q + 32'(i)) % 32'(BIAS_LANES)) +: BIAS_BITS];",
        "bias_q[i] <= p_rdata[BIAS_BITS * (32'(i) % 32'(BIAS_LANES)) +: BIAS_BITS];",
        "bias lane taken from the tile lane (wrong for tiles with c0 % BIAS_LANES != 0)"),
     "tiles_bias_aligned"),
    (_m("per_channel_shift_word_0",
        "p_raddr = P_ADDR_W'(rec_a + 32'd3 + c0_q / 32'(LANES));",
        "p_raddr = P_ADDR_W'(rec_a + 32'd3);",
        "per-channel shifts: every tile reads the first shift word"),
     "no_per_channel"),
    (_m("pool_zp_not_subtracted",
        "\n                           - 48'(za) * 48'(divisor);", ";",
        "pool: the input zero point not subtracted from the sum"),
     "pool_zp_0"),
    (_m("fin_not_cleared_one_step",
        "fin_q[l] <= (s1_first_q ? '0 : acc_q[l]) + term[l];",
        "fin_q[l] <= acc_q[l] + term[l];",
        "the finished sum of a one-step pixel (first = last step) adds the previous "
        "pixel's accumulator"),
     "multi_step_pixels"),
    (_m("pool_ties_wrong_rule",
        [("(ROUND_HALF_EVEN ? q[0] : !negative)", "(ROUND_HALF_EVEN ? !negative : q[0])"),
         ("(ROUND_HALF_EVEN ? dq_q[l][0] : (dacc_q[l] >= 0))",
          "(ROUND_HALF_EVEN ? (dacc_q[l] >= 0) : dq_q[l][0])")], None,
        "pool: tie rule swapped"),
     "pool_divisor_1"),
)

REASONS = {
    "no_negative_shift": "no weighted layer has a shift n < 0 and the add's ky is unsigned "
                         "(requant never takes the left-shift branch)",
    "relu_zp_0": "every ReLU layer's output zero point is 0 (clamp at zp = clamp at 0)",
    "acc_fits_31": "the largest possible |accumulator| of every layer, 255 * 128 * IC*KH*KW "
                   "(+ bias), is below 2**30",
    "tiles_bias_aligned": "every tile's first channel c0 is a multiple of BIAS_LANES "
                          "(TILE_OC and LANES are multiples of it)",
    "no_per_channel": "no layer has per-channel shifts",
    "pool_zp_0": "the pool's input zero point is 0",
    "multi_step_pixels": "every output pixel takes at least 2 steps (ic tiles * KH * KW "
                         ">= 2), so the first step is never the last",
    "pool_divisor_1": "the pool's divisor is 1 (1x1 map): no remainder, so no tie",
}


#: HOLES and NOT_EXERCISED mutants the stress package (tb/compute/stress.py) kills: all
#: but bias_lane_from_tile_lane, whose reason (every tile's c0 a multiple of
#: BIAS_LANES) is a property of the accelerator (TILE_OC 8, LANES 8, 4 int16 biases a
#: word), not of any network: no package can kill it on the default accelerator.
STRESS_KILLED: tuple[str, ...] = tuple(
    m.name for m, _ in HOLES + NOT_EXERCISED if m.name != "bias_lane_from_tile_lane")
#: the stimulus label of a kill by the stress package
STRESS_PACKAGE = "stress package (tb/compute/stress.py)"


def not_exercised_reasons(program: Any, bias_lanes: int, tile_oc: int) -> dict[str, bool]:
    """Whether each reason of NOT_EXERCISED holds for `program` (engine_program.Program)."""
    from cosim.golden.engine_program import PER_CHANNEL_BIT

    weighted = [s for s in program.steps if s.op == "weighted"]
    pools = [s for s in program.steps if s.op == "pool"]
    holds = {}
    holds["no_per_channel"] = all(not (s.fields[0] & PER_CHANNEL_BIT) for s in weighted)
    holds["pool_zp_0"] = all((s.fields[12] & 0xFF) == 0 for s in pools)
    holds["pool_divisor_1"] = all(s.fields[14] == 1 for s in pools)
    holds["tiles_bias_aligned"] = (tile_oc % bias_lanes == 0
                                   and program.lanes % bias_lanes == 0)
    return holds


def _package_reasons(package: Any, lanes: int) -> dict[str, bool]:
    """The reasons that need the package's layer entries."""
    shifts, relu_zps, worst, fewest = [], [], 0, 1 << 30
    for e in package.layers:
        if e["op"] not in ("conv2d", "linear"):
            continue
        s = e.get("shift")
        shifts += s if isinstance(s, list) else [s]
        if e.get("relu"):
            relu_zps.append(int(e["output"]["zero_point"]))
        shape = list(e["weight_shape"]) + [1, 1]
        worst = max(worst, 255 * 128 * shape[1] * shape[2] * shape[3])
        kk = shape[2] * shape[3]
        depthwise = e["op"] == "conv2d" and int(e.get("groups", 1)) > 1 and shape[1] == 1
        fewest = min(fewest, kk if depthwise else -(-shape[1] // lanes) * kk)
    return {"no_negative_shift": min(shifts) >= 0,
            "relu_zp_0": all(z == 0 for z in relu_zps),
            "acc_fits_31": worst + 2 ** 15 < 2 ** 30,
            "multi_step_pixels": fewest >= 2}


def check_not_exercised(package: Any, program: Any, layout_config: Any) -> dict[str, bool]:
    """Every reason of REASONS evaluated on the package (True: the mutant cannot be killed
    by it)."""
    bias_lanes = int(layout_config.word_bits) // int(layout_config.bias_bits)
    holds = not_exercised_reasons(program, bias_lanes, int(layout_config.tile_oc))
    holds |= _package_reasons(package, int(layout_config.tile_ic))
    return holds


def all_mutants(include_not_exercised: bool = False) -> tuple[Mutant, ...]:
    """COMPUTE_MUTANTS (and HOLES and NOT_EXERCISED)."""
    return COMPUTE_MUTANTS + (tuple(m for m, _ in HOLES + NOT_EXERCISED)
                              if include_not_exercised else ())


# ---------------------------------------------------------------------------- runner
def mutant_work(prepared: Any, name: str, root: Path = ROOT) -> Path:
    """build/mutants/compute/work/<name>: the mutant's run folder (its own dumps; with
    links to the prepared inputs for a Prepared without run folders)."""
    work = root / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    if callable(prepared.plusargs):  # the run folder is separate from the inputs
        return work
    for f in READ_ONLY:
        link = work / f
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to((Path(prepared.work) / f).resolve())
    return work


#: the second stimulus: test image STRESS_IMAGE with its contrast times STRESS_CONTRAST,
#: clipped to the input range (saturated input codes). The shipped network's test
#: images never drive a requantized code to 255 (no high-end saturation anywhere, in
#: any step); this one does in 6 steps (pointwise, depthwise and add).
STRESS_IMAGE = 1
STRESS_CONTRAST = 4.0


def prepare_stress(network: Any, prepared: Any, image: int = STRESS_IMAGE,
                   contrast: float = STRESS_CONTRAST) -> Any:
    """A work folder like `prepared` whose image 0 is the stress image (golden codes of
    every step from IntegerModel, the prepared run's rounding, and their coverage bins;
    the stream, descriptors, parameter image and program are links to the prepared
    ones); a Prepared of it."""
    import numpy as np
    from cosim.golden.infer import IntegerModel
    from cosim.quant.package import load_package
    from cosim.tb.compute.prepare import IMAGE_INDEPENDENT, test_images, write_expected

    work = ROOT / f"stress-{Path(prepared.work).name}-{image}-{contrast:g}"
    work.mkdir(parents=True, exist_ok=True)
    info = json.loads((Path(prepared.work) / "run.json").read_text())
    stamp = {"from": str(Path(prepared.work).resolve()), "key": info.get("key"),
             "image": image, "contrast": contrast, "rounding": prepared.rounding}
    done = work / "stress.json"
    if not done.is_file() or json.loads(done.read_text()) != stamp:
        package = load_package(network.package_dir)
        x = test_images(package, image + 1, prepared.image_size)[image:image + 1]
        # (the package's input range is [-1, 1): scale 1/128, zero point 128)
        x = np.clip(x * contrast, -1.0, 1.0).astype(np.float32)
        model = IntegerModel.from_package(package, rounding=prepared.rounding,
                                          float32_step=False)
        write_expected(work, package, prepared.program, model, x)
        for f in IMAGE_INDEPENDENT:
            link = work / f
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to((Path(prepared.work) / f).resolve())
        (work / "run.json").write_text(json.dumps({**info, "images": 1}) + "\n")
        done.write_text(json.dumps(stamp) + "\n")
    return dataclasses.replace(prepared, work=work, images=1)


def killer_for(network: Any, prepared: Any, work: Path) -> Killer:
    """LayerByLayerTest on the whole network, seed 1, writing its files to folder `work`
    (COMPUTE_RUN: its own act_load/act_dump/stats/param_dump; the prepared inputs are
    read where they are; a Prepared whose plusargs is a property instead gets `work`
    as COMPUTE_WORK, with links to the inputs)."""
    from cosim.tb.test_compute import MODULE, PASS_THROUGH, TOPLEVEL

    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env |= dict(network.env)
    env["OMP_NUM_THREADS"] = "1"
    if callable(prepared.plusargs):
        env |= {"COMPUTE_WORK": str(prepared.work), "COMPUTE_RUN": str(work)}
        plus = list(prepared.plusargs(work))
    else:
        env["COMPUTE_WORK"] = str(work)
        plus = [a.replace(str(prepared.work), str(work)) for a in prepared.plusargs]
    return Killer(MODULE, TEST, env, tuple(plus), 1, TOPLEVEL,
                  parameters=dict(prepared.parameters))


def step_failure(sim: str, tag: str, results_root: Path = RESULTS_ROOT) -> dict:
    """The killer's summary: failed steps, the first failing step, first error."""
    path = results_dir(sim, tag, results_root) / f"{TEST}-{sim}.json"
    if not path.is_file():
        return {"summary": False}
    s = json.loads(path.read_text())
    bad = [r for r in s.get("steps", []) if r["mismatches"] or r["padding_errors"]
           or r["unknown_words"]]
    out = {"summary": True, "passed": s["passed"], "steps_failed": len(bad),
           "codes_wrong": s["codes_checked"] - s["codes_identical"],
           "errors": s.get("errors", [])[:1]}
    if bad:
        b = bad[0]
        out["first_step"] = (f"{b['name']} ({b['op']}/{b['kind']}): {b['mismatches']}/"
                             f"{b['codes']} codes differ")
    return out


def baseline(network: Any, prepared: Any, sim: str = "verilator", name: str = "baseline"
             ) -> tuple[list[str], dict]:
    """The killer on the original sources: (failed tests, step_failure)."""
    from cosim.tb.test_compute import compute_sources

    work = mutant_work(prepared, name)
    killer = killer_for(network, prepared, work)
    tag = f"compute-mutant-{name}"
    failed, _ = run_killer(killer, sim, [Path(p) for p in compute_sources(network)],
                           tag=tag, results_root=RESULTS_ROOT)
    return failed, step_failure(sim, tag)


def run_compute_mutants(network: Any, prepared: Any, mutants: Sequence[Mutant] | None = None,
                        sim: str = "verilator", jobs: int = 2, stress: bool = True,
                        second: tuple[Any, Any] | None = None
                        ) -> tuple[list[MutantResult], dict[str, dict], float]:
    """Every mutant (default COMPUTE_MUTANTS) against LayerByLayerTest, `jobs` at a time:
    first on the prepared test image; a survivor then on the stress image
    (prepare_stress; `stress`); a survivor then on `second` = (network, prepared), the
    stress package (its own layout and build; run folders `<mutant>-stresspkg`).
    (results, per-mutant step_failure with "stimulus", wall seconds)."""
    from cosim.tb.test_compute import compute_sources

    mutants = list(COMPUTE_MUTANTS if mutants is None else mutants)
    sources = [Path(p) for p in compute_sources(network)]
    stressed = prepare_stress(network, prepared) if stress else None
    second_sources = [Path(p) for p in compute_sources(second[0])] if second else None

    def one(m: Mutant) -> tuple[MutantResult, dict]:
        killer = killer_for(network, prepared, mutant_work(prepared, m.name))
        r = run_mutant(m, killer, sim, sources, root=ROOT, results_root=RESULTS_ROOT)
        d = step_failure(sim, f"mutant-{m.name}")
        d["stimulus"] = "test image 0"
        if stressed is not None and not r.killed and not r.error:
            name = f"{m.name}-stress"
            killer = killer_for(network, stressed, mutant_work(stressed, name))
            r2 = run_mutant(dataclasses.replace(m, name=name), killer, sim, sources,
                            root=ROOT, results_root=RESULTS_ROOT)
            d = step_failure(sim, f"mutant-{name}")
            d["stimulus"] = (f"stress image (test image {STRESS_IMAGE}, contrast x"
                             f"{STRESS_CONTRAST:g})")
            r = dataclasses.replace(r2, mutant=m, seconds=r.seconds + r2.seconds)
        if second is not None and not r.killed and not r.error:
            net2, prep2 = second
            name = f"{m.name}-stresspkg"
            killer = killer_for(net2, prep2, mutant_work(prep2, name))
            r3 = run_mutant(dataclasses.replace(m, name=name), killer, sim, second_sources,
                            root=ROOT, results_root=RESULTS_ROOT)
            d = step_failure(sim, f"mutant-{name}")
            d["stimulus"] = STRESS_PACKAGE
            r = dataclasses.replace(r3, mutant=m, seconds=r.seconds + r3.seconds)
        if not r.first_error:  # the scoreboard's first error, else the first bad step
            r.first_error = (d.get("errors") or [d.get("first_step", "")])[0]
        return r, d

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        pairs = list(pool.map(one, mutants))
    wall = time.perf_counter() - t0
    return [r for r, _ in pairs], {r.mutant.name: d for r, d in pairs}, wall


def table(results: Sequence[MutantResult], details: dict[str, dict]) -> str:
    """mutant | bug | killed | first error (first failing step)."""
    rows = [f"{'mutant':26s} {'killed':7s} {'steps':>5s} bug / first failing step / first error"]
    for r in results:
        d = details.get(r.mutant.name, {})
        status = "KILLED" if r.killed else ("ERROR" if r.error else "ALIVE")
        rows.append(f"{r.mutant.name:26s} {status:7s} {d.get('steps_failed', '-')!s:>5s} "
                    f"{r.mutant.bug}  ({r.seconds:.0f} s)")
        first = (r.error or r.first_error or "-").replace("\n", " ")
        rows.append(f"{'':40s}killed on: {d.get('stimulus', '-') if r.killed else '-'}; "
                    f"first error: {first[:160]}")
    return "\n".join(rows)


def apply_all(sources: Sequence[Path], root: Path = ROOT / "apply-check") -> int:
    """Apply every mutant (COMPUTE_MUTANTS, HOLES, NOT_EXERCISED) to copies; the count."""
    for m in all_mutants(True):
        apply(m, root=root, sources=sources)
    return len(all_mutants(True))
