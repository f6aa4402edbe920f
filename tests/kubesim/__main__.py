"""``python -m tests.kubesim --kubeconfig PATH``: serve until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
from pathlib import Path
from types import FrameType

from .simulator import Simulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kubesim", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write the admin kubeconfig")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    # The handlers only record the signal: a handler runs between two bytecodes of the main thread,
    # possibly inside another handler or while the main thread holds a lock, so it must not take
    # locks itself (threading.Event.set() does, and a second signal arriving during the first then
    # deadlocked). The wake-up pipe interrupts the wait below at once; more signals during the
    # shutdown are recorded too and change nothing. The process then ends with ``os._exit`` (see the
    # bottom): the interpreter's own exit would restore the default actions and die of a late signal,
    # and switching the handlers to SIG_IGN first races with signals already tripped ("Signal 2
    # ignored due to race condition").
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    sim: Simulator | None = None
    try:
        if not received:
            sim = Simulator(port=args.port).start()
            args.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            args.kubeconfig.write_text(sim.kubeconfig.read_text())
            print(f"ready {sim.url}", flush=True)
        while not received:
            select.select([wake_r], [], [], 1.0)
            try:
                while os.read(wake_r, 512):
                    pass  # drain: the signal numbers are in ``received``
            except BlockingIOError:
                pass  # nothing (more) to read
    finally:
        if sim is not None:
            sim.stop()
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter shutdown: a signal arriving now still only calls on_signal
