"""`cosim demo`: `cosim run` on the shipped project cosim/projects/demo.toml.

The demo is the offline default flow (the shipped MobileNetV2-ReLU on the bundled
digits, the default accelerator, the reference loader RTL on Icarus) with the steps
of cosim.run: package, golden, golden-verify, the pyuvm whole-network test, a short
waves run and build/report/index.html. Its options replace the project's values
(another network with --checkpoint/--model, other simulators with --sims, smaller
runs with --calibration-images/--images/...). Step output goes to <build>/logs/.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from cosim.options import add_data_options, add_model_options
from cosim.quant.choices import SHIPPED_CHECKPOINT
from cosim.quant.errors import UserError

SIMS = ("icarus", "verilator")


class DemoError(UserError):
    """A demo option is wrong (one line naming it)."""


def demo_project(args: argparse.Namespace):
    """The shipped demo project with the demo's options over it (a cosim.project.Project)."""
    from cosim.options import model_spec
    from cosim.project import load_project, shipped_project
    from cosim.quant.workdir import build_root

    build = Path(args.build).absolute() if args.build is not None else build_root()
    project = load_project(shipped_project("demo"), build=build)
    spec = model_spec(args)
    data = {key: value for key, value in (("name", args.data), ("root", args.root),
                                          ("image_size", args.image_size),
                                          ("imagenette_size", args.imagenette_size))
            if value is not None}
    if data.get("root") is not None:
        data["root"] = str(Path(data["root"]).expanduser().absolute())
    if args.download:
        data["download"] = True
    return project.with_options(
        checkpoint=Path(args.checkpoint).absolute(),
        arch=spec.arch if spec is not None else None,
        model_args=dict(spec.kwargs) if spec is not None else {},
        data=data, quant={**project.quant, "calibration_images": args.calibration_images},
        simulators=tuple(args.sims), test=args.sim_test,
        waves=project.waves and not args.no_waves, images=args.images,
        golden_images=args.verify_images, golden_images_224=args.verify_images_224)


def register(subparsers, parents=(),
             run_cosim: Callable[[list[str]], int] | None = None) -> argparse.ArgumentParser:
    """Add `cosim demo` to a cosim parser. `run_cosim(argv) -> status` runs one cosim
    command in this process (cosim.cli.main, handed in so that this module does not
    import the CLI that imports it)."""
    parser = subparsers.add_parser(
        "demo", parents=list(parents), help="the whole flow, offline, with a report",
        description="cosim run on the shipped project cosim/projects/demo.toml: quantize a "
                    "checkpoint (default: the shipped MobileNetV2-ReLU), export, build the "
                    "golden image, verify the golden model, stream the network through the "
                    "RTL under the pyuvm environment, and write <build>/report/index.html. "
                    "The options below replace the project's values.")
    network = parser.add_argument_group("network (default: the shipped MobileNetV2-ReLU)")
    network.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT,
                         help="float checkpoint: a cosim checkpoint, or with --model a plain "
                              "state_dict / torchvision checkpoint (default: the shipped "
                              "one)")
    add_model_options(network)
    add_data_options(parser, defaults=False)
    parser.add_argument("--build", type=Path, default=None,
                        help="output root (default: $COSIM_BUILD, else the checkout's "
                             "build/, else ./build)")
    parser.add_argument("--sims", type=lambda text: [s for s in text.split(",") if s],
                        default=["icarus"],
                        help="comma-separated simulators: icarus, verilator (default: icarus)")
    parser.add_argument("--sim-test", default="WholeNetworkTest",
                        choices=("WholeNetworkTest", "RandomSubsetTest", "BackpressureTest"),
                        help="pyuvm test to run (default: %(default)s)")
    parser.add_argument("--calibration-images", type=int, default=512,
                        help="default: %(default)s")
    parser.add_argument("--images", type=int, default=64,
                        help="rebuild-check images (default: %(default)s)")
    parser.add_argument("--verify-images", type=int, default=54,
                        help="golden-verify images (default: %(default)s)")
    parser.add_argument("--verify-images-224", type=int, default=4,
                        help="golden-verify images at 224x224 (default: %(default)s)")
    parser.add_argument("--no-waves", action="store_true", help="skip the short waves run")
    parser.add_argument("--force", action="store_true",
                        help="write into --build and replace its package/, golden/ and "
                             "report/ even if they are not folders this tool wrote (a link "
                             "there is replaced, never followed); never /, home, the "
                             "working directory or a folder holding an input")
    parser.set_defaults(handler=_checked_run, run_cosim=run_cosim)
    return parser


def _checked_run(args: argparse.Namespace) -> int:
    from cosim.run import run_project

    unknown = [sim for sim in args.sims if sim not in SIMS]
    if unknown or not args.sims:
        raise DemoError(f"--sims: unknown simulator {unknown[0] if unknown else ''!r}; "
                        f"expected {', '.join(SIMS)}")
    for option, value, low in (("--calibration-images", args.calibration_images, 1),
                               ("--images", args.images, 1),
                               ("--verify-images", args.verify_images, 1),
                               ("--verify-images-224", args.verify_images_224, 0)):
        if value < low:
            raise DemoError(f"{option} must be >= {low}, got {value}")
    project = demo_project(args)
    return run_project(project, args.run_cosim, force=args.force, verbose=args.verbose,
                       quiet=args.quiet, title="cnn-cosim demo",
                       command=f"cosim demo --build {project.build}")
