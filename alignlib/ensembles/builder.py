"""One task's ensemble: build members, train them batched, record their activations.

These functions are what the pipeline's train and extract jobs call; each takes a
task's validated config section and its data set (alignlib.ensembles.data).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from alignlib._extras import pipeline_import  # noqa: E402

xr = pipeline_import("xarray", __name__)

from alignlib import __version__
from alignlib.ensembles.networks import Architecture, end_to_end, forward, init_member, stack_members
from alignlib.ensembles.noise import SNR_DEFINITIONS, corrupt, member_noise_rng
from alignlib.seeding import stream
from alignlib.stats.threshold import noise_fit_definition
from alignlib.ensembles.training import chunked_forward, sample_size_groups, train_ensemble

DTYPES = {"float32": torch.float32, "float64": torch.float64}

#: on an accelerator, the steps between the checks "is any member still training?" (each one waits
#: for the device); on the CPU the check is free and made every step
SYNC_EVERY = 50
#: a bucket of sample sizes trained in one batch spans at most this ratio of its largest to its
#: smallest n, so padding to the largest n at most doubles the arithmetic
BUCKET_RATIO = 2.0
#: and holds at most this many (member, sample, unit) activation values (bounds the device memory)
BUCKET_ELEMENTS = 2**28
#: how the sample sizes are grouped: "per_n" trains each n alone (the CPU's grouping: every step
#: there costs arithmetic, so padding and members run past their own stop cost more than the
#: launches saved; see docs/performance.md, "Training throughput"); "ratio" puts consecutive n
#: into buckets of at most BUCKET_RATIO (the accelerator's: a step there is launch latency)
GROUPINGS = ("per_n", "ratio")


def sync_interval(device) -> int:
    """Steps between host synchronisations of training (``train(sync_every=...)``): 1 on the CPU (the
    per-n training as it always was), :data:`SYNC_EVERY` on an accelerator."""
    return 1 if torch.device(device).type == "cpu" else SYNC_EVERY


def default_grouping(device) -> str:
    """The grouping of sample sizes for ``device``: per_n on the CPU, ratio on an accelerator."""
    return "per_n" if torch.device(device).type == "cpu" else "ratio"


def n_buckets(ns, device="cpu", *, grouping: str | None = None, batch_size: int | None = None,
              members_per_n=None, units: int = 1, max_ratio: float = BUCKET_RATIO,
              max_elements: int = BUCKET_ELEMENTS) -> list[list[int]]:
    """The sample sizes ``ns`` in the batches they are trained in (ascending, each n once).

    ``grouping`` (:data:`GROUPINGS`; None: :func:`default_grouping` of ``device``): per_n gives one
    bucket per n; ratio fills buckets with consecutive n while the largest is at most ``max_ratio``
    times the smallest and (members x largest n x ``units``) stays within ``max_elements``
    (``members_per_n``: {n: members}, default 1 each; ``units``: the network's summed widths). An n
    trained in minibatches (``batch_size`` < n) is always alone: its minibatch order is its own.
    """
    grouping = default_grouping(device) if grouping is None else grouping
    if grouping not in GROUPINGS:
        raise ValueError(f"unknown grouping {grouping!r}; known: {list(GROUPINGS)}")
    ns = sorted({int(n) for n in ns})
    members_per_n = members_per_n or {}
    buckets: list[list[int]] = []
    for n in ns:
        alone = grouping == "per_n" or (batch_size is not None and batch_size < n)
        if buckets and not alone and _joins(buckets[-1], n, batch_size, members_per_n, units, max_ratio,
                                            max_elements):
            buckets[-1].append(n)
        else:
            buckets.append([n])
    return buckets


def _joins(bucket, n, batch_size, members_per_n, units, max_ratio, max_elements) -> bool:
    """Whether ``n`` (larger than every n of ``bucket``) may join it."""
    if batch_size is not None and batch_size < bucket[-1]:  # the bucket is a minibatch n: alone
        return False
    members = sum(members_per_n.get(m, 1) for m in bucket) + members_per_n.get(n, 1)
    return n <= max_ratio * bucket[0] and members * n * units <= max_elements


def is_classification(data: xr.Dataset) -> bool:
    return data.attrs.get("target") == "classification"


def loss_of(cfg: dict, data: xr.Dataset) -> str:
    loss = cfg["training"]["loss"]
    if loss == "auto":
        return "cross_entropy" if is_classification(data) else "mse"
    if loss == "cross_entropy" and not is_classification(data):
        raise ValueError("training.loss: cross_entropy needs a classification data set")
    return loss


def output_width(data: xr.Dataset) -> int:
    return int(data.attrs["classes"]) if is_classification(data) else data.sizes["output"]


def architecture(cfg: dict, data: xr.Dataset) -> Architecture:
    net = cfg["network"]
    kind = net["kind"]
    conv, image_shape = (), None
    d = data.sizes["feature"]
    if kind == "cnn":
        if "image_shape" not in data.attrs:
            raise ValueError(f"network.kind cnn needs an image data set, not {data.attrs.get('dataset')!r}")
        image_shape = tuple(int(v) for v in np.atleast_1d(data.attrs["image_shape"]))
        conv = tuple(net["channels"])
        c, h, w = image_shape
        for _ in conv:
            h, w = h // 2, w // 2
        d = conv[-1] * h * w
    return Architecture(
        widths=(d, *net["hidden"], output_width(data)),
        activation="linear" if kind == "linear" else net["activation"],
        bias=bool(net["bias"]) and kind != "linear",
        conv=conv,
        image_shape=image_shape,
        record=net["record"],
        conv_record=net["conv_record"],
    )


def member_training_set(task: str, cfg: dict, data: xr.Dataset, snr: float, n: int, seed: int):
    """Member (snr, n, seed)'s training set after its own noise: (inputs (n, d), targets).

    Targets are integer labels (n,) when the loss is cross-entropy (or the noise flips
    labels), else float targets (n, out), one-hot for classification.
    """
    x = data["train_x"].values[:n]
    loss = loss_of(cfg, data)
    noise = cfg["noise"]["kind"]
    if is_classification(data):
        labels = data["train_label"].values[:n]
        if noise == "label_flip" or loss == "cross_entropy":
            targets = labels
        else:
            targets = np.eye(int(data.attrs["classes"]))[labels]
    else:
        if noise == "label_flip":
            raise ValueError(f"tasks.{task}.noise.kind: label_flip needs a classification data set")
        targets = data["train_y"].values[:n]
    rng = member_noise_rng(cfg["base_seed"], task, snr, n, seed)
    x, targets = corrupt(noise, x=x, targets=targets, snr=snr, rng=rng,
                         target_variance=data.attrs["target_variance"],
                         input_variance=data.attrs["input_variance"],
                         classes=data.attrs.get("classes"))
    if loss == "mse" and targets.ndim == 1:  # flipped labels trained with MSE: one-hot them
        targets = np.eye(int(data.attrs["classes"]))[targets]
    return x, targets


def member_init(task: str, cfg: dict, arch: Architecture, snr: float, n: int, seed: int):
    rng = stream(cfg["base_seed"], task, "init", float(snr), int(n), int(seed))
    return init_member(arch, cfg["network"]["init_scale"], rng)


def _errors(out: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Per member: 0-1 error for integer labels, else mean over samples of the squared error."""
    if target.dtype == torch.long:
        return (out.argmax(-1) != target).double().mean(-1).cpu().numpy()
    return ((out.double() - target.double()) ** 2).sum(-1).mean(-1).cpu().numpy()


def _clean_test_targets(data, device, dtype):
    if is_classification(data):
        return torch.as_tensor(data["test_label"].values, device=device)
    return torch.as_tensor(data["test_y"].values, dtype=dtype, device=device)


def _outputs_and_test_error(arch, params, x, data, batch_size, device, dtype):
    """The members' outputs on their training inputs and on the test inputs, and their clean test error."""
    with torch.no_grad():
        train_out = chunked_forward(arch, params, x, batch_size)
        test_x = torch.as_tensor(data["test_x"].values, dtype=dtype, device=device)
        test_out = chunked_forward(arch, params, test_x, batch_size)
    return train_out, test_out, _errors(test_out, _clean_test_targets(data, device, dtype))


def _log_done(prefix: str, result, t0: float, log) -> None:
    """One log line for a finished training call: its time, how many members converged, their steps."""
    print(f"{prefix} done in {time.perf_counter() - t0:.1f} s: "
          f"{int(result.converged.sum())}/{len(result.steps)} converged, "
          f"steps {int(result.steps.min())}-{int(result.steps.max())}", file=log, flush=True)


def train_members(task, cfg, data, n, members, device, log=sys.stderr, checkpoints=None, checkpoint_unit="auto",
                  sync_every=None):
    """Train the members [(snr, seed), ...] at sample size n in one batched computation.

    ``checkpoints``, ``checkpoint_unit``: passed to ``train_ensemble`` (the result then also holds
    the members' weights at those checkpoints; alignpipe.checkpoints). ``sync_every``: see
    ``train`` (None: :func:`sync_interval` of ``device``; the results do not depend on it).

    Returns (arch, TrainResult, train_error (B,), test_error (B,)): the train error on each
    member's own noisy training set, the test error on the clean test set (MSE for
    regression, 0-1 error for classification).
    """
    arch = architecture(cfg, data)
    tcfg = cfg["training"]
    dtype = DTYPES[tcfg["dtype"]]
    loss = loss_of(cfg, data)
    sets = [member_training_set(task, cfg, data, s, n, k) for s, k in members]
    shared_inputs = cfg["noise"]["kind"] != "input_gaussian"
    x = torch.as_tensor(sets[0][0] if shared_inputs else np.stack([s[0] for s in sets]), dtype=dtype, device=device)
    y = np.stack([s[1] for s in sets])
    y = torch.as_tensor(y, device=device) if y.dtype.kind == "i" else torch.as_tensor(y, dtype=dtype, device=device)
    params = stack_members([member_init(task, cfg, arch, s, n, k) for s, k in members], dtype, device)
    noise_scale = noise_variance_scale(cfg, data, [s for s, _ in members], y)
    t0 = time.perf_counter()

    def progress(step, active):
        print(f"[{task} n={n}] step {step}: {active}/{len(members)} members still training "
              f"({time.perf_counter() - t0:.1f} s)", file=log, flush=True)

    batch_size = tcfg["batch_size"]
    batch_seed = int(stream(cfg["base_seed"], task, "minibatch_order", int(n)).integers(2**62))
    result = train_ensemble(
        arch, params, x, y, optimizer=tcfg["optimizer"], lr=tcfg["lr"], max_steps=tcfg["max_steps"],
        tol=tcfg["tol"], loss=loss, fit_tol=tcfg["fit_tol"], fit_scale=noise_scale, batch_size=batch_size,
        batch_seed=batch_seed,
        progress=progress, checkpoints=checkpoints, checkpoint_unit=checkpoint_unit,
        sync_every=sync_interval(device) if sync_every is None else sync_every,
    )
    train_out, test_out, test_error = _outputs_and_test_error(arch, result.params, x, data, batch_size, device, dtype)
    _log_done(f"[{task} n={n}]", result, t0, log)
    for b in np.flatnonzero(result.diverged):  # each diverged member, named (alignlib.ensembles.divergence decides)
        print(f"[{task} n={n}] DIVERGED: snr={members[b][0]:g} seed={members[b][1]} "
              f"({tcfg['optimizer']}, lr={tcfg['lr']:g}): training loss {result.initial_loss[b]:.3g} at the "
              f"start, {result.final_loss[b]:.3g} at the end", file=log, flush=True)
    # classification: 0-1 error against the member's own (noisy) labels, whatever the loss
    train_target = y.argmax(-1) if is_classification(data) and y.dtype != torch.long else y
    train_error = _errors(train_out, train_target)
    fit = noise_fit(cfg, data, n, train_out, train_target, train_error, noise_scale)
    return arch, result, train_error, test_error, fit


def _padded(values: np.ndarray, n: int) -> np.ndarray:
    """``values`` (rows, ...) with zero rows appended up to n rows."""
    return np.concatenate([values, np.zeros((n - len(values), *values.shape[1:]), dtype=values.dtype)])


def train_members_across_n(task, cfg, data, members, device, log=sys.stderr, sync_every=None):
    """Train the members [(snr, n, seed), ...] of several sample sizes in one batched computation.

    Inputs and targets are padded to the largest n; each member is trained, stopped and judged on its
    own first n rows only (``train(sample_counts=...)``), so every member equals its training at its
    own n (:func:`train_members`) up to floating-point summation order. Full-batch training only.
    Returns (arch, TrainResult, train_error (B,), test_error (B,), noise_fit (B,)) in the order of
    ``members``, as :func:`train_members` does; train error and noise fit are computed per sample
    size on the members' own rows.
    """
    arch = architecture(cfg, data)
    tcfg = cfg["training"]
    dtype = DTYPES[tcfg["dtype"]]
    loss = loss_of(cfg, data)
    counts = np.array([int(n) for _, n, _ in members])
    n_max = int(counts.max())
    label = "-".join(str(n) for n in sample_size_groups(counts))
    sets = [member_training_set(task, cfg, data, s, n, k) for s, n, k in members]
    if cfg["noise"]["kind"] != "input_gaussian":  # shared inputs: member b's are the first n_b of n_max rows
        x = torch.as_tensor(sets[int(np.argmax(counts))][0], dtype=dtype, device=device)
    else:
        x = torch.as_tensor(np.stack([_padded(s[0], n_max) for s in sets]), dtype=dtype, device=device)
    y = np.stack([_padded(s[1], n_max) for s in sets])
    y = torch.as_tensor(y, device=device) if y.dtype.kind == "i" else torch.as_tensor(y, dtype=dtype, device=device)
    params = stack_members([member_init(task, cfg, arch, s, n, k) for s, n, k in members], dtype, device)
    noise_scale = noise_variance_scale(cfg, data, [s for s, _, _ in members], y)
    t0 = time.perf_counter()

    def progress(step, active):
        print(f"[{task} n={label}] step {step}: {active}/{len(members)} members still training "
              f"({time.perf_counter() - t0:.1f} s)", file=log, flush=True)

    batch_size = tcfg["batch_size"]
    result = train_ensemble(
        arch, params, x, y, optimizer=tcfg["optimizer"], lr=tcfg["lr"], max_steps=tcfg["max_steps"],
        tol=tcfg["tol"], loss=loss, fit_tol=tcfg["fit_tol"], fit_scale=noise_scale, batch_size=batch_size,
        progress=progress, sample_counts=counts,
        sync_every=sync_interval(device) if sync_every is None else sync_every,
    )
    train_out, test_out, test_error = _outputs_and_test_error(arch, result.params, x, data, batch_size, device, dtype)
    _log_done(f"[{task} n={label}]", result, t0, log)
    for b in np.flatnonzero(result.diverged):
        print(f"[{task} n={members[b][1]}] DIVERGED: snr={members[b][0]:g} seed={members[b][2]} "
              f"({tcfg['optimizer']}, lr={tcfg['lr']:g}): training loss {result.initial_loss[b]:.3g} at the "
              f"start, {result.final_loss[b]:.3g} at the end", file=log, flush=True)
    train_target = y.argmax(-1) if is_classification(data) and y.dtype != torch.long else y
    train_error, fit = np.empty(len(members)), np.empty(len(members))
    for n, idx in sample_size_groups(counts).items():  # each member on its own n rows, as at its own n
        index = torch.as_tensor(idx, device=train_out.device)
        out_n, target_n = train_out[index, :n], train_target[index, :n]
        train_error[idx] = _errors(out_n, target_n)
        fit[idx] = noise_fit(cfg, data, n, out_n, target_n, train_error[idx],
                             None if noise_scale is None else noise_scale[index])
    return arch, result, train_error, test_error, fit


def noise_variance_scale(cfg: dict, data: xr.Dataset, snrs, y: torch.Tensor):
    """Per member, the expected squared norm of its target noise, out_dim * sigma^2 (target_gaussian
    noise with float targets), else None: a regression train MSE divided by it is the fraction of the
    noise left unmemorised."""
    if cfg["noise"]["kind"] != "target_gaussian" or y.dtype == torch.long:
        return None
    sigma2 = float(data.attrs["target_variance"]) / np.asarray(snrs, dtype=np.float64)
    return torch.as_tensor(y.shape[-1] * sigma2, dtype=y.dtype, device=y.device)


def noise_fit(cfg: dict, data: xr.Dataset, n: int, train_out, train_target, train_error, noise_scale) -> np.ndarray:
    """Per member, how much of its own noise it has *not* memorised (alignlib.stats.threshold):

    target_gaussian: train MSE / (out_dim sigma^2); label_flip: the fraction of its flipped labels
    it does not reproduce (its 0-1 train error when none was flipped); otherwise the train error
    over the clean target variance (0-1 error for labels).
    """
    if noise_scale is not None:
        return train_error / noise_scale.double().cpu().numpy()
    if cfg["noise"]["kind"] == "label_flip":
        clean = torch.as_tensor(data["train_label"].values[:n], device=train_target.device)
        flipped = train_target != clean  # (B, n)
        missed = (train_out.argmax(-1) != train_target) & flipped
        count = flipped.sum(-1)
        frac = missed.sum(-1).double() / count.clamp_min(1).double()
        return torch.where(count > 0, frac, torch.as_tensor(train_error, device=frac.device)).cpu().numpy()
    if train_target.dtype == torch.long:
        return np.asarray(train_error)
    return np.asarray(train_error) / float(data.attrs["target_variance"])


MEMBER_VARIABLES = ("steps", "converged", "criterion", "train_error", "test_error", "noise_fit", "diverged",
                    "initial_loss", "final_loss")


def trained_members(task: str, cfg: dict, data: xr.Dataset, n: int, members, device, log=sys.stderr) -> list[dict]:
    """Train the members [(snr, seed), ...] at sample size n in one batch; per member, its weights
    (``param{i}``, float64 arrays) and its records (:data:`MEMBER_VARIABLES`), in the order given."""
    members = list(members)
    _, result, train_err, test_err, fit = train_members(task, cfg, data, n, members, device, log)
    return _member_records(len(members), result, train_err, test_err, fit)


def trained_in_buckets(task: str, cfg: dict, data: xr.Dataset, members_by_n: dict, device, log=sys.stderr,
                       grouping: str | None = None):
    """Train the members {n: [(snr, seed), ...]} of several sample sizes, bucket by bucket
    (:func:`n_buckets` with ``grouping``; None: the device's): a bucket of one n as
    :func:`trained_members` does, operation for operation; a bucket of several n in one batch
    (:func:`train_members_across_n`). Yields (n, members, [member, ...]) per n, n ascending, as each
    bucket finishes (members as :func:`trained_members` gives them)."""
    members_by_n = {int(n): list(m) for n, m in members_by_n.items() if len(m)}
    buckets = n_buckets(members_by_n, device, grouping=grouping, batch_size=cfg["training"]["batch_size"],
                        members_per_n={n: len(m) for n, m in members_by_n.items()},
                        units=sum(architecture(cfg, data).widths))
    for bucket in buckets:
        if len(bucket) == 1:
            n = bucket[0]
            yield n, members_by_n[n], trained_members(task, cfg, data, n, members_by_n[n], device, log)
            continue
        members = [(s, n, k) for n in bucket for s, k in members_by_n[n]]
        _, result, train_err, test_err, fit = train_members_across_n(task, cfg, data, members, device, log)
        records = _member_records(len(members), result, train_err, test_err, fit)
        start = 0
        for n in bucket:
            count = len(members_by_n[n])
            yield n, members_by_n[n], records[start:start + count]
            start += count


def _member_records(count: int, result, train_err, test_err, fit) -> list[dict]:
    """Per member of a training result, its weights (``param{i}``, float64) and records."""
    params = [p.double().cpu().numpy() for p in result.params]
    records = {"steps": result.steps, "converged": result.converged.astype(np.int8), "criterion": result.criterion,
               "train_error": train_err, "test_error": test_err, "noise_fit": fit,
               "diverged": result.diverged.astype(np.int8), "initial_loss": result.initial_loss,
               "final_loss": result.final_loss}
    out = []
    for b in range(count):
        member = {f"param{i}": p[b] for i, p in enumerate(params)}
        member.update({name: np.asarray(values)[b] for name, values in records.items()})
        out.append(member)
    return out


def grid_dataset(n: int, snrs, seeds, members: dict) -> xr.Dataset:
    """The model file's layout of one n: every variable over (snr, seed[, param axes]), from
    ``members`` {(snr, seed): member} (:func:`trained_members`)."""
    first = members[(snrs[0], seeds[0])]
    names = sorted((k for k in first if k.startswith("param")), key=lambda k: int(k[5:]))
    variables = {}
    for name in names + list(MEMBER_VARIABLES):
        values = np.stack([np.stack([np.asarray(members[(s, k)][name]) for k in seeds]) for s in snrs])
        dims = ("snr", "seed") + tuple(f"{name}_axis{j}" for j in range(values.ndim - 2))
        variables[name] = (dims, values)
    ds = xr.Dataset(variables, coords={"snr": list(snrs), "seed": list(seeds)})
    return ds.expand_dims(n=[int(n)])


def train_grid_n(task: str, cfg: dict, data: xr.Dataset, n: int, device, log=sys.stderr) -> xr.Dataset:
    """Train all (snr, seed) members at one n (they share X) and return their weights and errors."""
    snrs, seeds = [float(s) for s in cfg["snr"]], list(range(cfg["seeds"]))
    members = [(s, k) for s in snrs for k in seeds]
    trained = trained_members(task, cfg, data, n, members, device, log)
    return grid_dataset(n, snrs, seeds, dict(zip(members, trained)))


def model_attrs(task: str, cfg: dict, data: xr.Dataset) -> dict:
    net, noise, train = cfg["network"], cfg["noise"], cfg["training"]
    arch = architecture(cfg, data)
    classification = is_classification(data)
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
        "max_steps": int(train["max_steps"]),
        "train_error_definition": ("0-1 error on the member's own noisy training labels" if classification
                                   else "MSE on the member's own noisy training targets"),
        "test_error_definition": "0-1 error on the clean test labels" if classification else "MSE on the clean test targets",
        "target": "classification" if classification else "regression",
        "target_variance": float(data.attrs["target_variance"]),
        "noise_fit_definition": noise_fit_definition(noise["kind"], "classification" if classification else "regression"),
        "loss": loss_of(cfg, data),
        "alignlib_version": __version__,
    }


def params_of(models: xr.Dataset, snr, n) -> list[np.ndarray]:
    names = sorted((v for v in models.data_vars if v.startswith("param")), key=lambda v: int(v[5:]))
    return [models[v].sel(snr=snr, n=n).values for v in names]


def extract_activations(cfg: dict, data: xr.Dataset, models: xr.Dataset, device,
                        storage_dtype=np.float32, probe_var: str = "probe_x") -> xr.Dataset:
    """Every member's activations on the probe inputs, as a cube (snr, n, seed, layer, probe, unit).

    Computed in float64, stored as ``storage_dtype`` (float32, or float16 to halve the disk use).
    ``probe_var``: the data set's variable holding the probes (``ood_x``: the OOD probes; the
    cube's attribute ``probe_set`` names it).
    """
    arch = architecture(cfg, data)
    probes = torch.as_tensor(data[probe_var].values, dtype=torch.float64, device=device)
    snrs, ns, seeds = models["snr"].values, models["n"].values, models["seed"].values
    n_layers, width = len(arch.layer_names), max(arch.layer_widths)
    acts = np.full((len(snrs), len(ns), len(seeds), n_layers, probes.shape[0], width), np.nan, storage_dtype)
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
    for name in ("train_error", "test_error", "steps", "converged", "noise_fit", "diverged"):
        if name in models:
            ds[name] = models[name].transpose("snr", "n", "seed")
    if arch.is_linear:
        e2e = np.stack(e2e).reshape(len(snrs), len(ns), len(seeds), *e2e[0].shape[1:])
        ds["end_to_end"] = (("snr", "n", "seed", "output", "feature"), e2e)
    ds.attrs.update(models.attrs)
    if probe_var != "probe_x":
        ds.attrs["probe_set"] = probe_var
    return ds
