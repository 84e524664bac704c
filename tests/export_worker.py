"""Test helper for the SIGKILL test of tests/test_safety.py: forks one export per line.

    python tests/export_worker.py <quantize result> <package folder>

Loads the quantize result once (so each export starts at once), prints `ready`,
then for every line `go [seconds]` read from stdin forks a child that runs the real
export (quant.pipeline.run_export, the function `cosim export` calls) into the
folder; with `seconds`, it sends the child SIGKILL that long after the fork unless
the child has ended. It prints the child's wait status. The child is reaped only
after the kill, so its pid cannot have been reused by another process.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import torch


def main() -> int:
    torch.set_num_threads(1)  # no OpenMP pool in the parent: forking stays safe
    from cosim.quant.pipeline import load_quant_result, run_export

    result = load_quant_result(sys.argv[1])
    out = sys.argv[2]
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        delay = float(words[1]) if len(words) > 1 else None
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                run_export(result, out)
            except BaseException as error:  # noqa: BLE001 - report through the status
                print(f"export failed: {error}", file=sys.stderr, flush=True)
                os._exit(3)
            os._exit(0)
        status = None
        if delay is not None:
            while time.monotonic() - start < delay:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.002)
            else:
                os.kill(pid, signal.SIGKILL)  # not yet reaped: still our child
                status = None
        if status is None:
            _, status = os.waitpid(pid, 0)
        print(status, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
