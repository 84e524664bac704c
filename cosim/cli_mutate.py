"""`cosim mutate`: would the testbench catch bugs in YOUR design? (cosim/mutate.py)

    cosim mutate [--project cosim.toml|DIR] [--mutants FILE] [--sim icarus|verilator]
                 [--test NAME[,NAME...]] [--timeout SECONDS]

Needs a finished `cosim run` of the project. Runs the killer on the unmutated design
(it must pass), then on each mutant of the mutants file (default: mutants.toml beside
the project file), two at a time; prints `mutants killed: K/N` and one line per
mutant; writes <build>/mutants/report.json. Exit status 0 when every mutant is
killed, 1 when one is not, 2 on a mistake (one line).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cosim.quant.errors import OneLineArgumentParser, run_command

__all__ = ["add_arguments", "main", "run"]

PROG = "cosim mutate"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of `cosim mutate` (and `run` as the parser's handler)."""
    from cosim.project import PROJECT_FILE, SIMULATORS

    parser.add_argument("--project", type=Path, default=None,
                        help=f"the project file, or a folder holding {PROJECT_FILE} "
                             f"(default: ./{PROJECT_FILE})")
    parser.add_argument("--mutants", type=Path, default=None,
                        help="the mutants file (default: mutants.toml beside the project "
                             "file)")
    parser.add_argument("--sim", choices=SIMULATORS, default=None,
                        help="the simulator (default: the project's first)")
    parser.add_argument("--test", default=None, metavar="NAME[,NAME...]",
                        help="the killer's tests, of the project's stimulus path (default: "
                             "MalformedTest,WholeNetworkTest for the stream path, every "
                             "test of the other paths)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="end a mutant's run after this long and count it as killed (a "
                             "hang; default: 5 times the unmutated run, at least 60 s)")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """The body of `cosim mutate` (UserError subclasses for mistakes)."""
    from cosim.mutate import MUTANTS_FILE, load_mutants, run_mutation
    from cosim.project import PROJECT_FILE, load_project

    path = args.project or Path(PROJECT_FILE)
    if path.is_dir():
        path = path / PROJECT_FILE
    project = load_project(path)
    mutants_file = (args.mutants if args.mutants is not None
                    else Path(path).absolute().parent / MUTANTS_FILE)
    mutants_file = mutants_file.expanduser().absolute()
    mutants = load_mutants(mutants_file, project)
    return run_mutation(project, mutants, mutants_file=mutants_file, sim=args.sim,
                        tests=args.test, timeout=args.timeout)


def main(argv: list[str] | None = None) -> int:
    """`cosim mutate ...` (argv without the subcommand name); the exit status."""
    parser = add_arguments(OneLineArgumentParser(
        prog=PROG, description="The mutation test on your own RTL: mutants.toml's bugs "
                               "must each fail the testbench (docs/bring-your-own-rtl.md)."))
    args = parser.parse_args(argv)
    return run_command(PROG, lambda: args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
