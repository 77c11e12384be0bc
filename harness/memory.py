"""Peak memory of one cell, not of the process so far.

``ru_maxrss`` is the process's running maximum: after a big cell every later cell would
report the same peak. On Linux writing ``5`` to ``/proc/self/clear_refs`` resets the
peak resident set size (``VmHWM``), so each cell reads its own peak; elsewhere the
process maximum is the honest fallback, and the cell says which it is.
"""
from __future__ import annotations

import resource
from pathlib import Path

_CLEAR = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak() -> bool:
    """Start a new peak window; False where the OS cannot (the process maximum is used)."""
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory (MiB) since the last :func:`reset_peak` (else the process's)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
