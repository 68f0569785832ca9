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

All pairs: each member's normalised curves are computed once; each pair's correlation
block is one product, formed when its transport problem (a linear program per pair) is
solved, one pair at a time on the CPU, so memory grows with the largest pair, not with all
units of all members.

POT (``ot``) is an optional dependency, imported on the first call that needs it (importing it
takes longer than all the other metrics together): ``pip install "alignlib[soft-matching]"``.
Without it, ``hard=False`` (the default) raises an ImportError that says so; ``hard=True``
needs only SciPy.
"""

from __future__ import annotations

import numpy as np
import torch

from alignlib._extras import install_hint

from ._common import CONSTANT_RTOL, DTYPE, Tensor, centred_checked
from ._memory import check_memory
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
        from scipy.optimize import linear_sum_assignment   # here: scipy.optimize is slow to import

        rows, cols = linear_sum_assignment(sim, maximize=True)
        return float(sim[rows, cols].mean())
    cost = np.ascontiguousarray(1.0 - sim)     # = ||a~_k - b~_l||^2 / 2
    plan = optimal_transport().emd(np.full(da, 1.0 / da), np.full(db, 1.0 / db), cost,
                                   numItermax=max(100_000, 50 * da * db))
    return float((plan * sim).sum())


#: How to get POT, in the ImportError of a soft_matching call without it.
INSTALL_HINT = install_hint("soft-matching")   # pip install "alignlib[soft-matching]"


def optimal_transport():
    """The POT module (``ot``), imported on first use; an ImportError naming the extra without it."""
    try:
        import ot
    except ImportError as err:
        raise ImportError(f"soft_matching (hard=False, the default) solves optimal transport with POT, an "
                          f"optional dependency that is not installed: {INSTALL_HINT} (or pip install pot); "
                          f"hard=True (a one-to-one matching of equal widths) needs only SciPy") from err
    return ot


#: Peak bytes per unit pair (d_a x d_b) of one pair's matching: the correlation block and its
#: temporaries in torch and NumPy, the cost matrix, and POT's network simplex with its plan
#: (measured with ``ru_maxrss``: 52-58 bytes at 200 probes x 1500-3000 units; the issue's
#: 10000 units took 5.3 GB, 53 bytes).
BYTES_PER_UNIT_PAIR = 64


def memory_estimate(n: int, widths: list[int], pair: bool) -> int:
    """Peak bytes of :func:`soft_matching` on members of these widths: the centred curves
    (twice, while they are built) plus the largest pair's matching."""
    w = sorted(widths, reverse=True)
    largest = w[0] * w[1] if len(w) > 1 else w[0] * w[0]
    return 16 * n * sum(widths) + BYTES_PER_UNIT_PAIR * largest


def soft_matching(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Soft-matching similarity ``1 - d^2/2`` of centred unit-norm tuning curves (see module doc).

    Range [-1, 1], symmetric. Invariant to translation, isotropic scaling and unit
    permutations; not to orthogonal or other invertible linear maps. Needs POT for ``hard=False``
    (``pip install "alignlib[soft-matching]"``; an ImportError says so). Before any allocation the
    peak memory is estimated (:func:`memory_estimate`, about 64 bytes per pair of units of the
    largest pair of members) and a :class:`MemoryError` names it when it exceeds
    :func:`alignlib.metrics.memory_limit`.
    """
    hard = options["hard"]
    if not isinstance(hard, (bool, np.bool_)):
        raise ValueError(f"soft_matching: hard must be True or False, got {hard!r}")
    if not hard:
        optimal_transport()                 # before any work: say what is missing first
    device = members[0].device
    n, widths = members[0].shape[0], [x.shape[1] for x in members]
    check_memory("soft_matching", memory_estimate(n, widths, pair),
                 f"{len(members)} members of {n} probes and widths {_widths_text(widths)} "
                 f"(a {sorted(widths)[-1]} x {sorted(widths)[-2] if len(widths) > 1 else widths[0]} "
                 f"transport problem)", None)
    curves = [tuning_curves(x, i) for i, x in enumerate(members)]
    if pair:
        return torch.tensor(match_value(_similarity_block(curves[0], curves[1]), bool(hard)),
                            dtype=DTYPE, device=device)
    S = len(curves)
    out = np.ones((S, S))
    for i in range(S):
        for j in range(i + 1, S):
            out[i, j] = out[j, i] = match_value(_similarity_block(curves[i], curves[j]), bool(hard))
    return torch.as_tensor(out, dtype=DTYPE, device=device)


def _widths_text(widths: list[int]) -> str:
    return str(widths) if len(widths) <= 6 else f"{min(widths)}..{max(widths)}"


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
