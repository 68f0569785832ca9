"""Diverged members: what a training job does about them, and the align stage's checks.

Training marks a member ``diverged`` (alignlib.ensembles.training.diverged_members) when its loss or
a weight is NaN/inf, or its final training loss is far above its initial one. The model
file, the activation cube and ``alignment.nc`` carry ``diverged(snr, n, seed)``.

``on_divergence`` (config): ``fail`` stops the training job, naming every diverged member;
``exclude`` keeps going, and every pair a diverged member belongs to is NaN in
``alignment.nc`` (alignlib.ensembles.alignment), whose ``diverged_note`` attribute says which.
"""

from __future__ import annotations

import numpy as np

from alignlib._extras import pipeline_import  # noqa: E402

xr = pipeline_import("xarray", __name__)

from alignlib.ensembles.training import DIVERGENCE_FACTOR

POLICIES = ("fail", "exclude")
CRITERION = (f"non-finite loss or weights, or a final training loss over {DIVERGENCE_FACTOR:g} times "
             "the initial one")


class TrainingDiverged(RuntimeError):
    """Members diverged and the config says ``on_divergence: fail``."""


def diverged_members(ds: xr.Dataset) -> list[tuple[int, float, int]]:
    """(n, snr, seed) of every member flagged ``diverged`` in a model file, cube or alignment table."""
    if "diverged" not in ds:
        return []
    flags = ds["diverged"].transpose("n", "snr", "seed")
    return [(int(flags["n"].values[i]), float(flags["snr"].values[j]), int(flags["seed"].values[k]))
            for i, j, k in zip(*np.nonzero(flags.values.astype(bool)))]


def member_count(ds: xr.Dataset) -> int:
    return int(ds.sizes["n"] * ds.sizes["snr"] * ds.sizes["seed"])


def describe_members(members, limit: int = 8) -> str:
    """'n=20 snr=1 seed=0, n=20 snr=1 seed=2, ... and 5 more'."""
    names = [f"n={n} snr={snr:g} seed={seed}" for n, snr, seed in members]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_divergence(models: xr.Dataset, task: str, cfg: dict, policy: str = "fail") -> str | None:
    """After training: None when no member diverged; else raise :class:`TrainingDiverged` (``fail``)
    or return the note saying which members are excluded (``exclude``)."""
    if policy not in POLICIES:
        raise ValueError(f"on_divergence: {policy!r} is not one of {list(POLICIES)}")
    members = diverged_members(models)
    if not members:
        return None
    training = cfg["training"]
    what = (f"{len(members)} of {member_count(models)} members of task {task} diverged ({CRITERION}; "
            f"optimizer {training['optimizer']}, lr {training['lr']:g}): {describe_members(members)}")
    if policy == "fail":
        raise TrainingDiverged(f"{what}; lower tasks.{task}.training.lr, or set on_divergence: exclude to keep "
                               "going without them")
    return f"{what}; excluded (on_divergence: exclude): every pair with one of them is NaN"


def exclusion_note(table: xr.Dataset) -> str | None:
    """The note an alignment table carries when some of its members diverged (None otherwise)."""
    members = diverged_members(table)
    if not members:
        return None
    return (f"{len(members)} of {member_count(table)} members diverged during training and are excluded "
            f"(every pair with one of them is NaN): {describe_members(members)}")


def require_finite_alignment(table: xr.Dataset, task: str) -> None:
    """Raise when a task's alignment table holds no finite value at all (never write an all-NaN table)."""
    if bool(np.isfinite(table["alignment"].values).any()):
        return
    members = diverged_members(table)
    total = member_count(table)
    if members:
        why = (f"{len(members)} of its {total} members diverged during training, which leaves no grid point "
               f"with two members ({describe_members(members)}); lower tasks.{task}.training.lr")
    else:
        why = "every metric failed at every grid point (the log says why for each)"
    raise ValueError(f"no finite alignment value for task {task}: {why}")
