"""Ending a ``bench`` process without the interpreter's teardown.

Why: once torch, MLflow and ranx are loaded, CPython's finalisation (clearing every
module, collecting their objects) takes about 1.7 s on this project's 2-core machine
(torch 0.3, torch._dynamo 0.3, MLflow 0.55, ranx 0.4), spent after the work is over:
every ``bench`` command, and every ``--jobs`` worker the driver waits for at the end of
a grid, paid it. :func:`skip_teardown` keeps the normal exit (non-daemon threads are
joined, the exit handlers run) and leaves out only that last clearing, with
``os._exit``.

The hook is an exit handler, and exit handlers run last-registered first, so it must be
registered *before* the heavy imports: every handler they register then still runs
before it. Handlers registered earlier than it are skipped; those of the standard
library that matter here (flushing the standard streams and the logging handlers) are
run by the hook itself.
"""
from __future__ import annotations

import atexit
import os
import sys

_CODE = [0]
_REGISTERED = [False]


def skip_teardown() -> None:
    """From now on, this process ends with the status of :func:`set_exit_status` (0 unless
    set) right after the exit handlers registered later than this call have run."""
    if not _REGISTERED[0]:
        atexit.register(_end_now)
        _REGISTERED[0] = True


def set_exit_status(code: object) -> None:
    """The status the process ends with: ``SystemExit.code``'s meaning (``None`` is 0, a
    message is 1)."""
    _CODE[0] = code if isinstance(code, int) else (0 if code is None else 1)


def _end_now() -> None:
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken pipe: nothing more can be written anyway
            pass
    os._exit(_CODE[0])
