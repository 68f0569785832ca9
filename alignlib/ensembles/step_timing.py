"""A task's training step timed on the CPU and on a GPU, for ``device: auto`` (alignpipe.gpu keeps the
choice, its cache and its lock)."""

from __future__ import annotations

import time

import numpy as np
import torch

from alignlib.ensembles.builder import architecture, loss_of
from alignlib.ensembles.networks import init_member, stack_members
from alignlib.ensembles.training import TrainSettings, train


def step_seconds(cfg: dict, data, device, *, steps: int = 10, warmup: int = 3,
                 max_elements: float = 2e7) -> dict:
    """Seconds per full-batch training step of the task's network on ``device``: one batch holding every
    member of the task's grid (SNR x seeds x n) on the grid's mean n of random inputs and targets
    (the arithmetic of one step of the whole grid; the task's optimizer, loss, dtype and minibatch
    size; no stopping rule). ``steps`` timed steps after ``warmup`` untimed ones (the difference of
    two runs, so that set-up cancels). A batch over ``max_elements`` (members x samples x widest
    layer) is timed with fewer members and scaled up in proportion.

    Returns {"step_s", "members", "timed_members", "n", "steps", "threads"}.
    """
    device = torch.device(device)
    arch = architecture(cfg, data)
    training = cfg["training"]
    members = len(cfg["snr"]) * cfg["seeds"] * len(cfg["n"])
    n = max(2, int(round(float(np.mean(cfg["n"])))))
    batch_size = training.get("batch_size")
    samples = min(n, batch_size) if batch_size else n
    timed = int(max(1, min(members, max_elements // (samples * max(arch.widths)))))
    dtype = getattr(torch, training.get("dtype") or "float32")
    loss = loss_of(cfg, data)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((n, int(data.sizes["feature"]))), dtype=dtype, device=device)
    if loss == "cross_entropy":
        y = torch.as_tensor(rng.integers(0, arch.widths[-1], (timed, n)), device=device)
    else:
        y = torch.as_tensor(rng.standard_normal((timed, n, arch.widths[-1])), dtype=dtype, device=device)
    params = stack_members([init_member(arch, cfg["network"]["init_scale"], rng) for _ in range(timed)], dtype, device)

    def run(max_steps):
        settings = TrainSettings(optimizer=training["optimizer"], lr=training["lr"], max_steps=max_steps, tol=0.0,
                                 loss=loss, batch_size=batch_size)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        train(arch, params, x, y, settings)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    run(warmup)  # first calls: allocations, kernel loading
    total, base = run(warmup + steps), run(warmup)
    # on a busy machine the difference can vanish or turn negative: then the whole run's mean step
    # (its set-up included, so an upper bound) instead of 0, which would make any device look free
    seconds = (total - base) / steps if total > base else total / (warmup + steps)
    return {"step_s": seconds * members / timed, "members": members, "timed_members": timed, "n": n,
            "steps": steps, "threads": torch.get_num_threads()}


def device_timings(cfg: dict, data, gpu_index: int, **timing) -> dict:
    """A task's training step timed on the CPU (this process's threads) and on ``cuda:<gpu_index>``
    (:func:`step_seconds`, ``timing`` its keywords): the faster device, both timings, the machine."""
    cpu = step_seconds(cfg, data, "cpu", **timing)
    cuda = step_seconds(cfg, data, torch.device("cuda", gpu_index), **timing)
    return {"device": "cpu" if cpu["step_s"] < cuda["step_s"] else "cuda",
            "cpu_step_s": cpu["step_s"], "cuda_step_s": cuda["step_s"], "cpu_threads": cpu["threads"],
            "members": cpu["members"], "timed_members": cpu["timed_members"], "n": cpu["n"], "steps": cpu["steps"],
            "gpu": torch.cuda.get_device_name(gpu_index), "torch": torch.__version__}
