"""The `tfkit` console script: the CLI, quiet about Ctrl-C from the first instant, and quick to leave.

Commands handle an interrupt themselves (exit 130, staging cleaned up). This wrapper covers the
moments before a command runs (importing the CLI, parsing options), where Python would otherwise
print a traceback.

When the command is done, the process leaves without the interpreter's teardown: freeing every
object of a large run (a million-row frame, the thread pools) takes a fifth of a second and does
nothing useful. Every file tfkit writes is closed by then; atexit handlers (weakref finalizers
included) still run and the standard streams are flushed. (mypy leaves the same way.)
"""

from __future__ import annotations

import atexit
import os
import sys


# polars' allocator (its own jemalloc, configured by this variable when polars loads): one arena
# instead of one per thread (jemalloc's default is four per CPU). Each arena keeps the pages its
# threads freed, so a short job's peak carried every thread's garbage: the linkage bench's worker at
# 100k x 100k peaked 305 -> 278 MiB with one arena, FEBRL2 134 -> 131, with no more CPU (three runs
# each, load ~12). Added to the variable's options unless they set `narenas` already (a user's
# own setting wins): a parent process that imported polars hands its children polars' defaults
# in this variable (polars' import writes them there), which a plain default would not amend.
POLARS_ALLOCATOR = {"_RJEM_MALLOC_CONF": "narenas:1"}


# glibc's malloc (numpy's allocator): one arena for every thread instead of one per thread that
# allocates. `link` trains on a second thread beside blocking (linker.TrainingBeside); with an arena each,
# memory one thread freed was not reused by the other: hard 100k peaked 296 MiB, 289 with one arena
# (278 without the thread), CPU unchanged (three runs each, load ~16).
M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)
MALLOC_ARENAS = 1


def configure_runtime() -> None:
    """Settings that must be in place before polars is imported and before any thread starts (the
    console script does this first; a program calling tfkit's library can call it before its own
    first `import polars`)."""
    for name, value in POLARS_ALLOCATOR.items():
        options = os.environ.get(name, "")
        if value.split(":")[0] + ":" not in options:
            os.environ[name] = f"{options},{value}" if options else value
    if "MALLOC_ARENA_MAX" not in os.environ:  # a user's own setting wins
        try:
            import ctypes

            ctypes.CDLL(None).mallopt(M_ARENA_MAX, MALLOC_ARENAS)
        except (OSError, AttributeError):  # not glibc: nothing to set
            pass


def return_free_memory() -> None:
    """Hand the pages glibc's malloc holds free (numpy's freed arrays) back to the system
    (malloc_trim(0)); nothing where the C library is not glibc. glibc keeps freed memory in its heap
    for reuse, and above its dynamic mmap threshold (raised to the largest array freed so far) a
    freed million-pair array stays there too: `link` calls this once scoring is done, so the
    blocking, comparing and training garbage is not resident under the pairs write and clustering
    that follow (the demo at 100k x 100k: peak 283-294 -> 261-267 MiB; a fixed mmap threshold
    of 1 MiB gave as much for 10% more CPU: each array's pages faulted anew)."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def main() -> None:
    configure_runtime()
    _leave(run())


def run() -> int:
    """Run the CLI; returns the exit status."""
    try:
        from tfkit.cli import main as cli

        cli()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except SystemExit as done:
        return _exit_status(done.code)
    return 0


def _exit_status(code: object) -> int:
    """What the interpreter would exit with for SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def _leave(code: int) -> None:
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            code = code or 141
    os._exit(code)
