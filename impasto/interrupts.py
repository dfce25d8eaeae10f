"""Ctrl-C, pressed again while a stopped run writes what it reached.

The first Ctrl-C stops the work; the command then writes the result reached so far and exits
130. A second Ctrl-C in that window (or while the interpreter shuts torch down) used to print a
KeyboardInterrupt traceback. Commands call `ignore_further_interrupts()` once they know the run
was interrupted: from then on Ctrl-C is ignored until the process exits, a second or so later.
"""

from __future__ import annotations

import signal
import threading


def ignore_further_interrupts() -> None:
    """Ignore SIGINT for the rest of this process (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
