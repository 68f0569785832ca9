"""What every rule script of the pipeline shares: its log, threads, timing, device and fast exit.

    from alignpipe.jobs import job

    with job(snakemake, device=True) as j:        # log, threads, clock, a device of its own
        with j.clock.numerics():
            ...                                   # the computation
        write_netcdf(result, snakemake.output[0])
    # a script that got here wrote its outputs: the process ends at once (alignpipe.timing.fast_exit)

The device comes from the config (``device``), not from the rule's params: it changes how fast a
job runs, not what it computes, so changing it reruns nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, TextIO

from alignlib.ensembles.device import resolve_device
from alignpipe.runlog import log_to
from alignpipe.timing import JobClock, fast_exit, job_clock


@dataclass(frozen=True)
class Job:
    """A running rule script: its Snakemake object, log, clock and (when asked for) torch device."""

    smk: Any
    log: TextIO
    clock: JobClock
    device: Any = None

    @property
    def task(self) -> str:
        return self.smk.wildcards.task


@contextlib.contextmanager
def job_device(name: str = "auto"):
    """The device a pipeline job computes on; with CUDA, a GPU of its own (alignpipe.gpu)."""
    device = resolve_device(name)
    if device.type != "cuda":
        yield device
        return
    import torch

    from alignpipe.gpu import acquire_gpu

    with acquire_gpu() as index:
        yield torch.device("cuda", index)


@contextlib.contextmanager
def job(smk, *, device: bool = False):
    """Set up a rule script: stdout/stderr into its log (an error: traceback there, one line on the
    console), its threads, its timing line, a torch device when ``device`` (torch imported first,
    so that the thread setting reaches it), and the fast exit once the block ends without error."""
    if device:
        import torch  # noqa: F401  (before job_clock, which sets its threads)
    with log_to(smk.log[0]) as log, job_clock(log, smk.threads) as clock:
        if device:
            with job_device(smk.config.get("device", "auto")) as chosen:
                print(f"device: {chosen}", file=log)
                yield Job(smk, log, clock, chosen)
        else:
            yield Job(smk, log, clock)
    fast_exit()  # outputs written and closed: skip the interpreter's teardown
