"""Soft-matching similarity (Khosla & Williams 2023): optimal transport between units.

Each unit is its tuning curve over the n probes, a column of the member. Curves are
centred over probes and scaled to unit norm, ``a~_k = A_c e_k / ||A_c e_k||`` (this is
the members' scale normalisation: per unit, so the value is also unchanged by a
positive rescaling of any single unit); a unit that is constant over the probes has no
tuning curve and is kept as the zero vector. The soft-matching distance is

    d^2(A, B) = min_P  sum_kl P_kl ||a~_k - b~_l||^2,

over transport plans P >= 0 with uniform marginals (rows sum to 1/d_a, columns to
1/d_b), computed exactly by POT's network simplex (``ot.emd``). With equal widths
an optimal P is a permutation matrix / d (Birkhoff), so d^2 is the best one-to-one
matching; ``hard=True`` computes that matching directly with
``scipy.optimize.linear_sum_assignment`` (equal widths only).

Reported similarity: ``1 - d^2/2 = sum_kl P_kl <a~_k, b~_l>`` -- the transport-weighted
correlation of the matched tuning curves (for units that are not constant; a constant
unit matched to another constant unit counts 1, to a live unit 1/2). Identical or
unit-permuted members give 1 (to rounding, ~1e-15). The range is [-1, 1] rather than
[0, 1]: members whose units are all anti-correlated give negative values (a single unit
and its negative: -1); members of trained networks sit in [0, 1].

Invariant to translation, isotropic scaling (and per-unit positive scaling) and unit
permutations; *not* to rotations or other linear maps of the units, which mix tuning
curves (the point of the metric: Procrustes = rotations allowed, soft matching = only
the order of the units).

All pairs: the normalised curves of all members are stacked once and every pair's
correlation block comes from one Gram matrix; the transport problems (a linear program
per pair) are solved one by one on the CPU.
"""

from __future__ import annotations

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment

from ._common import DTYPE, CONSTANT_RTOL, Tensor, centred_checked
from ._registry import MetricInfo, register


def tuning_curves(x: Tensor, index: int) -> Tensor:
    """Centred, unit-norm columns of ``x`` (n x d); constant columns are zero."""
    xc = centred_checked(x, index, "soft_matching")
    norms = xc.norm(dim=0)
    scale = x.abs().amax(dim=0) * x.shape[0] ** 0.5
    live = norms > CONSTANT_RTOL * torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.where(live, xc / torch.where(live, norms, torch.ones_like(norms)), torch.zeros_like(xc))


def _similarity_block(fa: Tensor, fb: Tensor) -> np.ndarray:
    """``1 - ||a~_k - b~_l||^2 / 2`` for all unit pairs (live-live: the correlation)."""
    sim = fa.mT @ fb
    na = (fa * fa).sum(0)            # 1 for live units, 0 for constant ones
    nb = (fb * fb).sum(0)
    sim = sim - 0.5 * (na[:, None] - 1.0) - 0.5 * (nb[None, :] - 1.0)   # 1 - (na + nb - 2 sim) / 2
    return sim.detach().cpu().numpy()


def match_value(sim: np.ndarray, hard: bool) -> float:
    """``max_P sum P_kl sim_kl`` over uniform-marginal plans (= 1 - d^2/2)."""
    da, db = sim.shape
    if hard:
        if da != db:
            raise ValueError(f"soft_matching with hard=True needs members of equal width (a one-to-one "
                             f"matching of units), got widths {da} and {db}; use hard=False (optimal "
                             f"transport with marginals 1/d_a, 1/d_b)")
        rows, cols = linear_sum_assignment(sim, maximize=True)
        return float(sim[rows, cols].mean())
    cost = np.ascontiguousarray(1.0 - sim)     # = ||a~_k - b~_l||^2 / 2
    plan = ot.emd(np.full(da, 1.0 / da), np.full(db, 1.0 / db), cost, numItermax=max(100_000, 50 * da * db))
    return float((plan * sim).sum())


def soft_matching(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Soft-matching similarity ``1 - d^2/2`` of centred unit-norm tuning curves (see module doc).

    Range [-1, 1], symmetric. Invariant to translation, isotropic scaling and unit
    permutations; not to orthogonal or other invertible linear maps.
    """
    hard = options["hard"]
    if not isinstance(hard, (bool, np.bool_)):
        raise ValueError(f"soft_matching: hard must be True or False, got {hard!r}")
    curves = [tuning_curves(x, i) for i, x in enumerate(members)]
    device = members[0].device
    if pair:
        return torch.tensor(match_value(_similarity_block(curves[0], curves[1]), bool(hard)),
                            dtype=DTYPE, device=device)
    S = len(curves)
    widths = [c.shape[1] for c in curves]
    offsets = np.concatenate([[0], np.cumsum(widths)])
    stacked = torch.cat(curves, dim=1)
    gram = stacked.mT @ stacked                       # all unit pairs of all members at once
    live = (stacked * stacked).sum(0)
    gram = (gram - 0.5 * (live[:, None] - 1.0) - 0.5 * (live[None, :] - 1.0)).cpu().numpy()
    out = np.ones((S, S))
    for i in range(S):
        for j in range(i + 1, S):
            block = gram[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]]
            out[i, j] = out[j, i] = match_value(block, bool(hard))
    return torch.as_tensor(out, dtype=DTYPE, device=device)


register(MetricInfo(
    name="soft_matching", range=(-1.0, 1.0), symmetric=True,
    invariances=frozenset({"translation", "isotropic_scaling", "permutation"}),
    needs="activations", options={"hard": False},
    description="Soft-matching similarity 1 - d^2/2: optimal transport (uniform marginals 1/d_a, "
                "1/d_b, cost = squared distance) between the members' centred, unit-norm tuning "
                "curves, i.e. the transport-weighted correlation of matched units; hard=True: the "
                "best one-to-one permutation (equal widths). Only the order of units is free: "
                "rotations lower it.",
    preconditions="Needs members that are not constant over probes; it compares individual units, "
                  "so it is informative only where units are meaningful (a privileged basis, e.g. "
                  "after a pointwise nonlinearity) -- for a linear layer any rotation of the units "
                  "is an equally good network and lowers it.",
    reference="Khosla & Williams 2023 (soft matching distance)", impl=soft_matching))
