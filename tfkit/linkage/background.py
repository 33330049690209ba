"""Work started on another thread now and waited for later: `link` prepares the names beside the
other fields and clusters while its caller writes the pairs. The work's time is in polars, numpy,
rapidfuzz and Double Metaphone, which release the GIL, so the two threads share the cores."""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")


def start(work: Callable[..., T], *args, name: str = "tfkit-background") -> Callable[[], T]:
    """Run `work(*args)` on another thread now; the returned function waits for it and gives its
    result, or raises its error (on every call)."""
    done: dict = {}

    def run() -> None:
        try:
            done["result"] = work(*args)
        except BaseException as err:  # handed to the thread that waits
            done["error"] = err

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        if "error" in done:
            raise done["error"]
        return done["result"]

    return result
