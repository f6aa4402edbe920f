"""How long the texts the project writes into the API may be, and the one way they are cut.

Each bound has its own name because each serves a different reader: a status ``message`` tells the
whole story of a failure, a condition message is a one-line summary, and an Event is a courtesy copy
of what status and logs already say. All are in UTF-8 bytes, as etcd counts them.
"""

from __future__ import annotations

STATUS_MESSAGE_BYTES = 8 * 1024
"""``status.message`` of a FlowRun or Flow condition (the full story is in Events and logs)."""
NODE_MESSAGE_BYTES = 1024
"""``status.nodes[*].message``: the latest error or retry note of one node."""
CONDITION_MESSAGE_CHARS = 1024
"""The message of a FlowRun's ``Succeeded`` condition while the runner writes it."""
EVENT_MESSAGE_BYTES = 1024
"""An Event's message: Events are for people skimming ``kubectl describe``."""
PROBLEM_MESSAGE_BYTES = 512
"""One validation problem (path and message), as ``flowctl lint`` prints it and status lists it;
only a value quoted from a huge definition makes one longer."""
STATUS_PROBLEMS_BYTES = 32 * 1024
"""All of a Flow's or FlowRun's ``status.problems``: with the condition message, a status stays
under 64 KiB whatever the definition (etcd refuses objects over about 1.5 MiB)."""


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, marking the cut."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    # The mark: "…" (3 bytes), " [", the count (no more digits than the whole length) and " bytes cut]".
    mark_bytes = 3 + 2 + len(str(len(raw))) + 11
    kept = raw[: max(limit - mark_bytes, 0)].decode("utf-8", errors="ignore")
    return f"{kept}… [{len(raw) - len(kept.encode())} bytes cut]"
