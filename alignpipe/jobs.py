"""What every rule script of the pipeline shares: its log, threads, timing, device and fast exit.

    from alignpipe.jobs import job

    with job(snakemake, device=True) as j:        # log, threads, clock, a device of its own
        with j.clock.numerics():
            ...                                   # the computation
        write_netcdf(result, snakemake.output[0])
    # a script that got here wrote its outputs: the process ends at once (alignpipe.timing.fast_exit)

The device comes from the config (``device``), not from the rule's params: it changes how fast a
job runs, not what it computes, so changing it reruns nothing. With CUDA a job holds a GPU slot
(``jobs_per_gpu`` slots per device, alignpipe.gpu.acquire_gpu); with ``device: auto`` and a visible
GPU, a task's jobs use the device its training step is faster on (alignpipe.gpu.task_device_choice,
measured once per task, the choice and both timings in the job log).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, TextIO

import torch  # before job_clock, which sets its threads

from alignlib.ensembles.device import resolve_device
from alignlib.ensembles.divergence import exclusion_note
from alignpipe.cubes import read_netcdf, write_netcdf
from alignpipe.draws import trained_tasks
from alignpipe.gpu import acquire_gpu, describe_choice, task_device_choice, time_devices, timing_key
from alignpipe.runlog import log_to, warn
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

    def write_alignment_table(self, table, path) -> None:
        """An alignment table to ``path`` (and printed to the log), with its note on the members left
        out (alignlib.ensembles.divergence.exclusion_note) made afresh and, where there is one, said
        on the console."""
        table.attrs.pop("diverged_note", None)
        note = exclusion_note(table)
        if note:
            table.attrs["diverged_note"] = note
            warn(note, self.log)
        print(table)
        write_netcdf(table, path)


@dataclass(frozen=True)
class TaskTiming:
    """What ``device: auto`` needs to choose a task's device: its settings, its data file (the network's
    input and output sizes) and the file its choice is kept in."""

    cfg: dict
    data: str
    cache: str


def task_timing(smk) -> TaskTiming | None:
    """The :class:`TaskTiming` of a rule script's task (None for a job without a task or a network)."""
    task = getattr(smk.wildcards, "task", None)
    config = smk.config
    cfg = trained_tasks(config).get(task) or config.get("tasks", {}).get(task) if task else None
    if not cfg or "network" not in cfg:
        return None
    results = config.get("results", "results")
    return TaskTiming(cfg, f"{results}/{task}/data/data.nc", f"{results}/{task}/device.json")


@contextlib.contextmanager
def job_device(name: str = "auto", *, jobs_per_gpu: int = 1, timing: TaskTiming | None = None, log=None):
    """The device a pipeline job computes on; with CUDA, a GPU slot of its own (alignpipe.gpu.acquire_gpu,
    ``jobs_per_gpu`` slots per device). ``auto`` with a visible GPU and a task's ``timing``: the device
    its training step is faster on (alignpipe.gpu.task_device_choice; the choice and both timings go
    to ``log``); without CUDA, the CPU and nothing measured."""
    device = resolve_device(name)
    if device.type != "cuda":
        yield device
        return
    if name == "auto" and timing is not None:
        record = task_device_choice(timing.cache, lambda index: time_devices(timing.cfg, read_netcdf(timing.data), index),
                                    key=timing_key(timing.cfg), jobs_per_gpu=jobs_per_gpu)
        print(describe_choice(record, timing.cache), file=log, flush=True)
        if record["device"] == "cpu":
            yield torch.device("cpu")
            return
    with acquire_gpu(jobs_per_gpu=jobs_per_gpu) as index:
        yield torch.device("cuda", index)


@contextlib.contextmanager
def job(smk, *, device: bool = False):
    """Set up a rule script: stdout/stderr into its log (an error: traceback there, one line on the
    console), its threads, its timing line, a torch device when ``device`` (torch imported first,
    so that the thread setting reaches it), and the fast exit once the block ends without error."""
    with log_to(smk.log[0]) as log, job_clock(log, smk.threads) as clock:
        if device:
            with job_device(smk.config.get("device", "auto"), jobs_per_gpu=smk.config.get("jobs_per_gpu", 1),
                            timing=task_timing(smk), log=log) as chosen:
                print(f"device: {chosen}", file=log)
                yield Job(smk, log, clock, chosen)
        else:
            yield Job(smk, log, clock)
    fast_exit()  # outputs written and closed: skip the interpreter's teardown
