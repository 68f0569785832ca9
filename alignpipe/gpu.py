"""Which GPU a job uses when several jobs run at once on one machine.

Snakemake counts a ``gpu`` resource (``--resources gpu=2`` lets two GPU jobs run together) but
gives a job no device id, so two concurrent local jobs would both land on ``cuda:0``.
:func:`acquire_gpu` hands each job a different device: device ``i`` is held by an exclusive
``fcntl.flock`` on ``<lock_dir>/gpu<i>.lock``. The kernel drops a flock when its process exits,
however it exits, so a crashed job never leaves a device locked.

Under a scheduler that assigns devices itself (SLURM sets ``CUDA_VISIBLE_DEVICES`` for a job
that asked for ``--gpus``), the job uses device 0 of those it sees and takes no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
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


@contextlib.contextmanager
def acquire_gpu(
    lock_dir: str | os.PathLike | None = None,
    device_count: int | None = None,
    *,
    poll_seconds: float = 1.0,
    timeout: float | None = None,
) -> Iterator[int]:
    """Hold one GPU for the duration of the ``with`` block; yields its index for ``cuda:<i>``.

    ``lock_dir``: folder of the lock files (created if missing); every job that shares the
    machine's GPUs must use the same one. Default: ``<tmp>/alignlib-gpu-locks``.
    ``device_count``: how many devices to share out; default ``torch.cuda.device_count()``.
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
    lock_dir = Path(lock_dir) if lock_dir is not None else DEFAULT_LOCK_DIR
    if not lock_dir.is_dir():
        lock_dir.mkdir(parents=True, exist_ok=True)
        if lock_dir == DEFAULT_LOCK_DIR:
            with contextlib.suppress(OSError):  # shared by every user of the machine
                lock_dir.chmod(0o1777)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        for index in range(device_count):
            fd = _try_lock(lock_dir / f"gpu{index}.lock")
            if fd is not None:
                try:
                    yield index
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                return
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"acquire_gpu: all {device_count} GPU(s) stayed busy for {timeout} s ({lock_dir})")
        time.sleep(poll_seconds if deadline is None else max(0.0, min(poll_seconds, deadline - time.monotonic())))
