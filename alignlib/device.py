"""Choosing the torch device at run time."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when a GPU is visible, else CPU; 'cuda' fails clearly without one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config device: 'cuda' was requested but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"config device: {name!r} is not one of auto, cpu, cuda")
    return torch.device(name)


@contextlib.contextmanager
def job_device(name: str = "auto"):
    """The device a pipeline job computes on; with CUDA, a GPU of its own (alignlib.gpu)."""
    device = resolve_device(name)
    if device.type != "cuda":
        yield device
        return
    from .gpu import acquire_gpu

    with acquire_gpu() as index:
        yield torch.device("cuda", index)
