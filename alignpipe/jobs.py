"""What every job script of the pipeline shares: its device (with a GPU of its own on a local
multi-GPU run)."""

from __future__ import annotations

import contextlib

import torch

from alignlib.ensembles.device import resolve_device


@contextlib.contextmanager
def job_device(name: str = "auto"):
    """The device a pipeline job computes on; with CUDA, a GPU of its own (alignpipe.gpu)."""
    device = resolve_device(name)
    if device.type != "cuda":
        yield device
        return
    from alignpipe.gpu import acquire_gpu

    with acquire_gpu() as index:
        yield torch.device("cuda", index)
