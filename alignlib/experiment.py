"""One task's ensemble: build members, train them batched, record their activations.

These functions are what the pipeline's train and extract jobs call; each takes a
task's validated config section and its data set (alignlib.data).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import xarray as xr

from . import __version__
from .networks import Architecture, end_to_end, forward, init_member, stack_members
from .noise import SNR_DEFINITIONS, noisy_targets
from .seeding import stream
from .training import train_ensemble

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def architecture(cfg: dict, data: xr.Dataset) -> Architecture:
    net = cfg["network"]
    activation = "linear" if net["kind"] == "linear" else net["activation"]
    return Architecture(
        widths=(data.sizes["feature"], *net["hidden"], data.sizes["output"]),
        activation=activation,
        bias=bool(net["bias"]),
    )


def member_targets(task: str, cfg: dict, data: xr.Dataset, snr: float, n: int, seed: int) -> np.ndarray:
    """The noisy training targets (n, out) of member (snr, n, seed)."""
    return noisy_targets(
        cfg["noise"]["kind"],
        data["train_y"].values[:n],
        base_seed=cfg["base_seed"], task=task, snr=snr, n=n, seed=seed,
        target_variance=data.attrs["target_variance"],
    )


def member_init(task: str, cfg: dict, arch: Architecture, snr: float, n: int, seed: int):
    rng = stream(cfg["base_seed"], task, "init", float(snr), int(n), int(seed))
    return init_member(arch, cfg["network"]["init_scale"], rng)


def _mse(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Mean over samples of the squared error summed over outputs, per member."""
    return ((pred.double() - target.double()) ** 2).sum(-1).mean(-1).cpu().numpy()


def train_members(task, cfg, data, n, members, device, log=sys.stderr):
    """Train the members [(snr, seed), ...] at sample size n in one batched computation.

    Returns (arch, TrainResult, train_error (B,), test_error (B,)).
    """
    arch = architecture(cfg, data)
    tcfg = cfg["training"]
    dtype = DTYPES[tcfg["dtype"]]
    x = torch.as_tensor(data["train_x"].values[:n], dtype=dtype, device=device)
    y = torch.as_tensor(
        np.stack([member_targets(task, cfg, data, s, n, k) for s, k in members]), dtype=dtype, device=device
    )
    params = stack_members([member_init(task, cfg, arch, s, n, k) for s, k in members], dtype, device)
    t0 = time.perf_counter()

    def progress(step, active):
        print(f"[{task} n={n}] step {step}: {active}/{len(members)} members still training "
              f"({time.perf_counter() - t0:.1f} s)", file=log, flush=True)

    result = train_ensemble(
        arch, params, x, y, optimizer=tcfg["optimizer"], lr=tcfg["lr"],
        max_steps=tcfg["max_steps"], tol=tcfg["tol"], progress=progress,
    )
    with torch.no_grad():
        train_pred = forward(arch, result.params, x)[-1]
        test_x = torch.as_tensor(data["test_x"].values, dtype=dtype, device=device)
        test_pred = forward(arch, result.params, test_x)[-1]
        test_y = torch.as_tensor(data["test_y"].values, dtype=dtype, device=device)
    print(f"[{task} n={n}] done in {time.perf_counter() - t0:.1f} s: "
          f"{int(result.converged.sum())}/{len(members)} converged, "
          f"steps {int(result.steps.min())}-{int(result.steps.max())}", file=log, flush=True)
    return arch, result, _mse(train_pred, y), _mse(test_pred, test_y)


def train_grid_n(task: str, cfg: dict, data: xr.Dataset, n: int, device, log=sys.stderr) -> xr.Dataset:
    """Train all (snr, seed) members at one n (they share X) and return their weights and errors."""
    snrs, seeds = [float(s) for s in cfg["snr"]], list(range(cfg["seeds"]))
    members = [(s, k) for s in snrs for k in seeds]
    arch, result, train_err, test_err = train_members(task, cfg, data, n, members, device, log)
    shape = (len(snrs), len(seeds))
    variables = {}
    for i, p in enumerate(result.params):
        p = p.double().cpu().numpy().reshape(shape + p.shape[1:])
        dims = ("snr", "seed") + tuple(f"param{i}_axis{j}" for j in range(p.ndim - 2))
        variables[f"param{i}"] = (dims, p)
    for name, values in [("steps", result.steps), ("converged", result.converged.astype(np.int8)),
                         ("criterion", result.criterion), ("train_error", train_err),
                         ("test_error", test_err)]:
        variables[name] = (("snr", "seed"), np.asarray(values).reshape(shape))
    ds = xr.Dataset(variables, coords={"snr": snrs, "seed": seeds})
    return ds.expand_dims(n=[int(n)])


def model_attrs(task: str, cfg: dict, arch: Architecture) -> dict:
    net, noise, train = cfg["network"], cfg["noise"], cfg["training"]
    return {
        "task": task,
        "dataset": cfg["dataset"]["kind"],
        "network": net["kind"],
        "widths": list(arch.widths),
        "activation": arch.activation,
        "bias": int(arch.bias),
        "init_scale": float(net["init_scale"]),
        "noise": noise["kind"],
        "snr_definition": SNR_DEFINITIONS[noise["kind"]],
        "optimizer": train["optimizer"],
        "train_error_definition": "MSE on the member's own noisy training targets",
        "test_error_definition": "MSE on the clean test targets",
        "alignlib_version": __version__,
    }


def params_of(models: xr.Dataset, snr, n) -> list[np.ndarray]:
    names = sorted((v for v in models.data_vars if v.startswith("param")), key=lambda v: int(v[5:]))
    return [models[v].sel(snr=snr, n=n).values for v in names]


def extract_activations(cfg: dict, data: xr.Dataset, models: xr.Dataset, device) -> xr.Dataset:
    """Every member's activations on the probe inputs, as a cube (snr, n, seed, layer, probe, unit)."""
    arch = architecture(cfg, data)
    probes = torch.as_tensor(data["probe_x"].values, dtype=torch.float64, device=device)
    snrs, ns, seeds = models["snr"].values, models["n"].values, models["seed"].values
    n_layers, width = len(arch.layer_names), max(arch.layer_widths)
    acts = np.full((len(snrs), len(ns), len(seeds), n_layers, probes.shape[0], width), np.nan, np.float32)
    e2e = []
    for i, snr in enumerate(snrs):
        for j, n in enumerate(ns):
            params = [torch.as_tensor(p, dtype=torch.float64, device=device) for p in params_of(models, snr, n)]
            with torch.no_grad():
                outs = forward(arch, params, probes)
                for layer, out in enumerate(outs):
                    acts[i, j, :, layer, :, : out.shape[-1]] = out.cpu().numpy()
                if arch.is_linear:
                    e2e.append(end_to_end(arch, params).cpu().numpy())
    ds = xr.Dataset(
        {
            "activation": (("snr", "n", "seed", "layer", "probe", "unit"), acts),
            "layer_width": (("layer",), np.array(arch.layer_widths)),
        },
        coords={"snr": snrs, "n": ns, "seed": seeds, "layer": arch.layer_names},
    )
    for name in ("train_error", "test_error", "steps", "converged"):
        ds[name] = models[name].transpose("snr", "n", "seed")
    if arch.is_linear:
        e2e = np.stack(e2e).reshape(len(snrs), len(ns), len(seeds), *e2e[0].shape[1:])
        ds["end_to_end"] = (("snr", "n", "seed", "output", "feature"), e2e)
    ds.attrs.update(models.attrs)
    return ds
