"""A pipeline job's threads, and how long it spends in alignlib's numerics.

Every rule script wraps its work in :func:`job_clock`: it sets the thread count of torch and
of every BLAS/OpenMP pool from the job's ``threads`` (so two jobs sharing a machine never
oversubscribe its cores), and times the numerics the script marks with ``clock.numerics()``
(training, forward passes, metrics, theory, claim statistics, drawing figures). Reading and
writing files, imports and process start-up stay outside. When the job ends, one
machine-readable line goes to its log::

    alignlib-timing: {"numerics_s": 12.31, "in_script_s": 14.02, "process_s": 15.4, "threads": 1, "at": 1796172714.82}

``process_s`` is the time since the job's process started (Linux; null elsewhere), ``at`` the
Unix time of the line.
``benchmarks/bench_pipeline.py`` adds these lines up per rule.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

from threadpoolctl import threadpool_limits

TAG = "alignlib-timing:"
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                     "NUMEXPR_NUM_THREADS")


def set_threads(threads: int) -> None:
    """Compute with ``threads`` threads: torch's intra-op pool (when torch is imported), every
    BLAS/OpenMP library loaded so far (threadpoolctl), and, through the environment, any loaded later."""
    threads = max(1, int(threads))
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    threadpool_limits(limits=threads)


def process_seconds() -> float | None:
    """Seconds since this process started (from /proc; None where there is none)."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time in ticks
    except (OSError, ValueError, IndexError):
        return None


class JobClock:
    """Accumulates the time spent inside ``with clock.numerics():`` blocks (nested blocks count once)."""

    def __init__(self, threads: int = 1):
        self.threads = threads
        self.numerics_s = 0.0
        self._depth = 0
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def numerics(self):
        self._depth += 1
        start = time.perf_counter()
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.numerics_s += time.perf_counter() - start

    def record(self) -> dict:
        process = process_seconds()
        return {"numerics_s": round(self.numerics_s, 3),
                "in_script_s": round(time.perf_counter() - self._start, 3),
                "process_s": None if process is None else round(process, 2),
                "threads": self.threads, "at": round(time.time(), 2)}

    def line(self) -> str:
        return f"{TAG} {json.dumps(self.record())}"


@contextlib.contextmanager
def job_clock(log=None, threads: int = 1):
    """Set the job's threads, yield a :class:`JobClock`, and write its timing line to ``log`` at the end."""
    set_threads(threads)
    clock = JobClock(threads)
    try:
        yield clock
    finally:
        print(clock.line(), file=log if log is not None else sys.stdout, flush=True)


def parse_timing(text: str) -> dict | None:
    """The last timing record in a job's log text (None when it has none)."""
    record = None
    for line in text.splitlines():
        if line.startswith(TAG):
            with contextlib.suppress(ValueError):
                record = json.loads(line[len(TAG):])
    return record


def fast_exit() -> None:
    """End a rule script that succeeded without the interpreter's teardown (about 0.6 s once torch
    is loaded, a tenth of a small job): flush stdout and stderr, then exit with status 0. Call it
    last, after every output is written and closed (a failing script never reaches it)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)
