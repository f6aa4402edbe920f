"""How long the runner took from its process start to its first node, for the ``Started`` Event.

A pod that takes seconds to get going is worth knowing about (a slow image, a heavy import), and
the kubelet's ``startedAt`` has whole seconds only. Linux keeps each process's start time in
``/proc/self/stat`` (clock ticks since boot) beside the uptime in ``/proc/uptime``; elsewhere the
figure is simply left out.
"""

from __future__ import annotations

import os


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
