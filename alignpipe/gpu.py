"""Which GPU a job uses when several jobs run at once on one machine, and whether a task's jobs use it.

Snakemake counts a ``gpu`` resource (``--resources gpu=2`` lets two GPU jobs run together) but
gives a job no device id, so two concurrent local jobs would both land on ``cuda:0``.
:func:`acquire_gpu` hands each job a different device: device ``i`` is held by an exclusive
``fcntl.flock`` on ``<lock_dir>/gpu<i>.lock``. The kernel drops a flock when its process exits,
however it exits, so a crashed job never leaves a device locked.

Several jobs per GPU (``jobs_per_gpu: k`` in the config): each device has k slots, lock files
``gpu<i>.lock`` (slot 0), ``gpu<i>.1.lock`` ... ``gpu<i>.<k-1>.lock``, handed out first slot of
every device first, so jobs spread over the devices before they share one. Give Snakemake as many
``gpu`` resources as slots (``--resources gpu=<k x GPUs>``). Small networks leave a GPU idle
between kernel launches; k jobs fill those gaps.

Under a scheduler that assigns devices itself (SLURM sets ``CUDA_VISIBLE_DEVICES`` for a job
that asked for ``--gpus``), the job uses device 0 of those it sees and takes no lock. SLURM has no
fraction of a GPU: a GPU job there holds its GPU alone, and with ``device: cuda`` a task's grid is
one job (alignpipe.jobsize), which keeps its GPU busy.

``device: auto`` with a visible GPU: :func:`task_device_choice` times a few training steps of the
task's network on the CPU and on the GPU (alignlib.ensembles.step_timing.step_seconds) once per task,
caches the choice in ``<results>/<task>/device.json`` and every device job of the task (training,
extraction, alignment) uses the faster device. Without CUDA nothing is measured: ``auto`` is the CPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT_LOCK_DIR = Path(tempfile.gettempdir()) / "alignlib-gpu-locks"


def _visible_device_count() -> int:
    import torch  # only here: alignpipe.gpu stays importable without torch's start-up cost

    return torch.cuda.device_count()


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None when another holder has it."""
    # read-only is enough for flock, and works on a lock file another user created
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def slot_lock_name(index: int, slot: int = 0) -> str:
    """The lock file of slot ``slot`` of device ``index`` (slot 0: ``gpu<i>.lock``, as with one job per GPU)."""
    return f"gpu{index}.lock" if slot == 0 else f"gpu{index}.{slot}.lock"


@contextlib.contextmanager
def acquire_gpu(
    lock_dir: str | os.PathLike | None = None,
    device_count: int | None = None,
    *,
    jobs_per_gpu: int = 1,
    poll_seconds: float = 1.0,
    timeout: float | None = None,
) -> Iterator[int]:
    """Hold one GPU slot for the duration of the ``with`` block; yields its device index for ``cuda:<i>``.

    ``lock_dir``: folder of the lock files (created if missing); every job that shares the
    machine's GPUs must use the same one. Default: ``<tmp>/alignlib-gpu-locks``.
    ``device_count``: how many devices to share out; default ``torch.cuda.device_count()``.
    ``jobs_per_gpu``: slots per device (k jobs share a device); the first free slot in the order
    slot 0 of every device, then slot 1 of every device, ...
    When all are held, waits, re-trying every ``poll_seconds``; raises ``TimeoutError`` after
    ``timeout`` seconds (default: wait for ever). Raises ``RuntimeError`` with no device.

    If ``CUDA_VISIBLE_DEVICES`` is set (a scheduler chose the devices), yields 0 at once and
    locks nothing.
    """
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        yield 0
        return
    if device_count is None:
        device_count = _visible_device_count()
    if device_count < 1:
        raise RuntimeError("acquire_gpu: no CUDA device to hand out (device_count is 0)")
    if int(jobs_per_gpu) < 1:
        raise ValueError(f"acquire_gpu: jobs_per_gpu must be at least 1, not {jobs_per_gpu}")
    slots = [(index, slot) for slot in range(int(jobs_per_gpu)) for index in range(device_count)]
    lock_dir = Path(lock_dir) if lock_dir is not None else DEFAULT_LOCK_DIR
    if not lock_dir.is_dir():
        lock_dir.mkdir(parents=True, exist_ok=True)
        if lock_dir == DEFAULT_LOCK_DIR:
            with contextlib.suppress(OSError):  # shared by every user of the machine
                lock_dir.chmod(0o1777)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        for index, slot in slots:
            fd = _try_lock(lock_dir / slot_lock_name(index, slot))
            if fd is not None:
                try:
                    yield index
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                return
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"acquire_gpu: all {len(slots)} slot(s) of {device_count} GPU(s) stayed busy for "
                               f"{timeout} s ({lock_dir})")
        time.sleep(poll_seconds if deadline is None else max(0.0, min(poll_seconds, deadline - time.monotonic())))


# --------------------------------------------------------------------------- device: auto

TIMING_WARMUP_STEPS = 3
TIMING_STEPS = 10
TIMING_ELEMENTS = 2e7  # members x samples x widest layer of the timed batch, at most (memory, time)
DEVICE_FILE = "device.json"


def timing_key(cfg: dict) -> str:
    """What the device choice of a task depends on: its network, training, data set and grid."""
    keys = ("dataset", "network", "training", "snr", "seeds", "n")
    text = json.dumps({k: cfg.get(k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def time_devices(cfg: dict, data, gpu_index: int) -> dict:
    """The device choice of a task, measured (alignlib.ensembles.step_timing.device_timings: its training step
    on the CPU, with this process's threads, and on ``cuda:<gpu_index>``; the faster one, with both
    timings), keyed by :func:`timing_key` and stamped with the time of measuring."""
    from alignlib.ensembles.step_timing import device_timings  # torch: loaded only when a task is timed

    return dict(device_timings(cfg, data, gpu_index, steps=TIMING_STEPS, warmup=TIMING_WARMUP_STEPS,
                               max_elements=TIMING_ELEMENTS),
                key=timing_key(cfg), measured_at=round(time.time(), 2))


def _read_choice(path: Path, key: str | None) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("device") not in ("cpu", "cuda"):
        return None
    return record if key is None or record.get("key") == key else None


@contextlib.contextmanager
def _exclusive(path: Path):
    """An exclusive flock on ``path`` (created if missing) for the ``with`` block; waits for it."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def task_device_choice(cache, measure, *, key: str | None = None, jobs_per_gpu: int = 1,
                       lock_dir: str | os.PathLike | None = None, device_count: int | None = None) -> dict:
    """A task's device choice for ``device: auto``: the record in ``cache`` (``<results>/<task>/device.json``)
    when its ``key`` matches (:func:`timing_key`), else ``measure(gpu_index)`` (:func:`time_devices`)
    with a GPU slot held (:func:`acquire_gpu`), written to ``cache``. Concurrent jobs of the task
    measure once: the first holds an exclusive lock on ``cache`` + ``.lock`` (taken before any GPU slot,
    so a job waiting for it holds none), the others then read its record. The returned record has
    ``cached``: whether it was read rather than measured now."""
    cache = Path(cache)
    record = _read_choice(cache, key)
    if record is not None:
        return dict(record, cached=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache.with_name(cache.name + ".lock")):
        record = _read_choice(cache, key)
        if record is not None:
            return dict(record, cached=True)
        with acquire_gpu(lock_dir, device_count, jobs_per_gpu=jobs_per_gpu) as index:
            record = measure(index)
        temporary = cache.with_name(cache.name + ".tmp")
        temporary.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(temporary, cache)
    return dict(record, cached=False)


def describe_choice(record: dict, cache) -> str:
    """The job log's line about a ``device: auto`` choice: the device, both timings, where it is kept."""
    how = "read from" if record.get("cached") else "measured now, kept in"
    return (f"device: auto -> {record['device']}: one training step of the task's {record['members']} members "
            f"(SNR x seeds x n) on n = {record['n']} samples took {1e3 * record['cpu_step_s']:.2f} ms on the CPU "
            f"({record['cpu_threads']} thread(s)) and {1e3 * record['cuda_step_s']:.2f} ms on the GPU "
            f"({record.get('gpu', 'cuda')}); {how} {cache}")
