"""The member store: every trained member kept on disk, so that a grid grows without retraining.

A train job of the pipeline writes its sample sizes' model file (``models/n<ns>.nc``, what extract
reads). Beside it, every member it trains goes into the task's store, one file per (n, SNR):
``results/<task>/store/n<n>/snr<snr>.nc``, holding the members (seeds) trained there so far. When
the job runs again because the grid grew (a seed, an SNR or an n added: its params changed), it
takes every member it finds in the store and trains only the others; the model file it writes
then holds the stored members' weights and records exactly as they were (the same bytes).

A stored member is reused only while everything that made it is unchanged, which its file's
``member_key`` records: the task's name, its network, noise, training and dataset settings and
``base_seed``, and the contents of the data it learnt from and was tested on (the first n
training inputs and targets, the test set). Anything else (a changed learning rate, a data set of
another pool) gives another key, and the member is trained afresh. ``rm -r results/<task>/store``
forgets every stored member of a task.

A train job trains the missing members of all its sample sizes at once (:func:`models_for_ns`): on an
accelerator in buckets of several n (one padded batch each, alignlib.ensembles.builder), on the CPU
one n at a time; every member goes into the store as its bucket finishes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from alignlib.ensembles.builder import MEMBER_VARIABLES, grid_dataset, trained_in_buckets
from alignpipe.cubes import write_netcdf

#: the settings of a task that make its members (with base_seed and the task's name)
MEMBER_SETTINGS = ("dataset", "network", "noise", "training")
#: the data a member at n depends on: its training rows (first n) and the whole test set
_ROWS = ("train_x", "train_y", "train_label")
_WHOLE = ("test_x", "test_y", "test_label")


def member_key(task: str, cfg: dict, data: xr.Dataset, n: int) -> str:
    """A fingerprint of everything that determines the members of ``task`` at sample size ``n``."""
    digest = hashlib.sha256()
    settings = {k: cfg.get(k) for k in MEMBER_SETTINGS}
    digest.update(json.dumps([task, cfg.get("base_seed"), settings], sort_keys=True, default=str).encode())
    for name in _ROWS + _WHOLE:
        if name in data:
            values = np.ascontiguousarray(data[name].values[:n] if name in _ROWS else data[name].values)
            digest.update(name.encode() + str(values.dtype).encode() + str(values.shape).encode() + values.tobytes())
    digest.update(repr(float(data.attrs.get("target_variance", np.nan))).encode())
    return digest.hexdigest()


class MemberStore:
    """The stored members of one task (``root`` = ``results/<task>/store``)."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, n: int, snr: float) -> Path:
        return self.root / f"n{int(n)}" / f"snr{float(snr)!r}.nc"

    def load(self, n: int, snr: float, key: str) -> dict:
        """{seed: member} stored for (n, snr) under ``key`` (empty when there is no such file, it was
        made under another key, or it cannot be read)."""
        path = self.path(n, snr)
        if not path.exists():
            return {}
        try:
            with xr.open_dataset(path) as ds:
                if ds.attrs.get("member_key") != key:
                    return {}
                ds = ds.load()
        except (OSError, ValueError, RuntimeError) as error:  # a damaged file: train its members again
            print(f"member store: {path} unreadable ({error}); its members are trained again", file=sys.stderr)
            return {}
        return {int(seed): {name: ds[name].sel(seed=seed).values for name in ds.data_vars}
                for seed in ds["seed"].values}

    def save(self, n: int, snr: float, key: str, members: dict) -> None:
        """Store ``members`` {seed: member} for (n, snr) under ``key``, beside those already stored
        under the same key (atomically: a killed job leaves the previous file)."""
        stored = self.load(n, snr, key)
        stored.update(members)
        seeds = sorted(stored)
        first = stored[seeds[0]]
        variables = {name: (("seed",) + tuple(f"{name}_axis{j}" for j in range(np.ndim(first[name]))),
                            np.stack([np.asarray(stored[s][name]) for s in seeds])) for name in first}
        ds = xr.Dataset(variables, coords={"seed": seeds}, attrs={"member_key": key, "n": int(n), "snr": float(snr)})
        path = self.path(n, snr)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_netcdf(ds, path)


def models_for_ns(task: str, cfg: dict, data: xr.Dataset, ns, device, store: MemberStore | None,
                  log=sys.stderr, grouping: str | None = None) -> xr.Dataset:
    """The model file of a train job's sample sizes ``ns`` (concatenated along n, in the order given) for
    every (snr, seed) of ``cfg``: members found in ``store`` are taken as stored; the missing members of
    every n are trained together, in buckets of sample sizes (alignlib.ensembles.builder.n_buckets,
    ``grouping``; None: the device's, one n at a time on the CPU), and stored as each bucket finishes.
    Without a store (None), every member is trained."""
    snrs, seeds = [float(s) for s in cfg["snr"]], list(range(cfg["seeds"]))
    ns = [int(n) for n in ns]
    keys = {n: member_key(task, cfg, data, n) if store is not None else None for n in ns}
    found: dict[int, dict] = {n: {} for n in ns}
    missing = {}
    for n in ns:
        if store is not None:
            for snr in snrs:
                stored = store.load(n, snr, keys[n])
                found[n].update({(snr, seed): stored[seed] for seed in seeds if seed in stored})
        missing[n] = [(snr, seed) for snr in snrs for seed in seeds if (snr, seed) not in found[n]]
        print(f"[{task} n={n}] {len(found[n])} member(s) from the store, {len(missing[n])} to train", file=log,
              flush=True)
    for n, members, trained in trained_in_buckets(task, cfg, data, missing, device, log, grouping):
        trained = dict(zip(members, trained))
        found[n].update(trained)
        if store is not None:
            for snr in snrs:
                mine = {seed: member for (s, seed), member in trained.items() if s == snr}
                if mine:
                    store.save(n, snr, keys[n], mine)
    return xr.concat([grid_dataset(n, snrs, seeds, found[n]) for n in ns], dim="n")


def models_at_n(task: str, cfg: dict, data: xr.Dataset, n: int, device, store: MemberStore | None,
                log=sys.stderr) -> xr.Dataset:
    """The model file's layout of one n (:func:`models_for_ns` of ``[n]``)."""
    return models_for_ns(task, cfg, data, [n], device, store, log)


__all__ = ["MEMBER_SETTINGS", "MEMBER_VARIABLES", "MemberStore", "member_key", "models_at_n", "models_for_ns"]
