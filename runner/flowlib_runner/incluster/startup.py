"""How long the runner took from its process start to its first node, for the ``Started`` Event.

A pod that takes seconds to get going is worth knowing about (a slow image, a heavy import), and
the kubelet's ``startedAt`` has whole seconds only. Linux keeps each process's start time in
``/proc/self/stat`` (clock ticks since boot) beside the uptime in ``/proc/uptime``; elsewhere the
figure is simply left out.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The runner's imports, without the cyclic garbage collector: ``main`` imports its modules inside.

    Why: importing the runner creates some 50,000 objects that live as long as the process (modules,
    classes, functions, pydantic's validators), and the collector, which counts allocations, went
    over them again and again while they were made: a tenth of the time to the first node went to
    collections that found almost nothing (most of it one full collection, which happened to fall
    in ``store.chunks``' import). After the imports the collector runs again, and ``gc.freeze()``
    first moves what exists to the permanent generation, so no later collection walks those objects
    either (the pattern the ``gc`` documentation gives for a process's start-up); the little garbage
    the imports left in cycles stays, as a module's would.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def seconds_since_process_start() -> float | None:
    """Seconds since this process started, to the clock tick (usually 10 ms); None off Linux."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            stat = handle.read()
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        # The command name (field 2) may hold spaces and parentheses: fields count from its last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - started)
