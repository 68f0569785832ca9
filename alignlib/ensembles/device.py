"""Choosing the torch device at run time (every pipeline job calls this: it imports torch only; the
timing of a task's training step for ``device: auto`` is alignlib.ensembles.step_timing)."""

from __future__ import annotations

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
