"""Canonical correlation metrics: mean squared CCA, SVCCA and PWCCA, with an optional ridge.

Each member is centred and reduced once to its thin SVD ``A_c = U S V^T`` (rank r).
Plain CCA's canonical correlations between A and B are the singular values of
``U_A^T U_B`` (Bjorck & Golub 1973).

Numerical rank. r counts the singular values of the centred member above
``alignlib.metrics.ranks.rank_tolerance``: ``s_1 x max(n, d) x eps64`` (the float64 SVD's
own error, ``numpy.linalg.matrix_rank``'s rule) and, with ``rank_eps`` = the storage
dtype's eps, at least ``rank_eps x ||A||_F`` (a bound on the spectral norm of the storage
rounding of the stored values A). Activations *stored* in float32 carry rounding noise of
relative size ~1e-7 in every direction; with float64's tolerance alone (``rank_eps=None``,
the default, right for data held in float64) those noise directions count as signal and
get whitened, so CCA measures rounding (the linear network's hidden layer: 0.555-0.618
instead of 1). Pass the storage dtype's eps (``rank_eps=numpy.finfo(numpy.float32).eps``;
``compute_alignment`` does this from the cube's dtype).

Ridge (``ridge = lam > 0``). The covariance ``A_c^T A_c`` is replaced by
``A_c^T A_c + lam' I`` with ``lam' = lam x mean(s_i^2, i <= r)``: the ridge is in units of
the mean variance per *occupied* direction, so ``ridge=0.1`` means the same at n < d as at
n > d (the former scaling, by the mean per-unit variance over all d units, shrank it by
r / d and made it vanish when n << d). The canonical directions are those of
``M = (U_A F_A)^T (U_B F_B)``, ``F = diag(s / sqrt(s^2 + lam'))``.

Why ridge CCA is evaluated on held-out probes. Rescaling the ridge alone does not make
it separate unrelated members when n <= r + 1: both members then span the whole
(n - 1)-dimensional centred probe space, so *in-sample* the variates ``U_A F_A p`` and
``U_B F_B q`` live in the same space and their correlation departs from 1 only through
the anisotropy of F. For members with a flat spectrum it cannot depart at all: two
isotropic members spanning the same probe space differ by an orthogonal map of their
units, which every metric in this family is invariant to. Measured for independent
standard Gaussian members, in-sample mean squared canonical correlation at ridge 0.1:
0.996 (n = 50 probes, d = 100 units, per-unit scaling), 0.991 (per-direction scaling),
0.9995 (n = 30, d = 300); even ridge = 10 gives 0.76-0.99. So with ``ridge > 0`` the
canonical directions are fitted on the even-indexed probes (0, 2, 4, ...) and the
reported correlations are the actual (Pearson) correlations of the canonical variates
on the odd-indexed probes, each half centred by its own mean: out-of-sample canonical
correlation, as in ridge-CCA practice (e.g. Bilenko & Gallant 2016, pyrcca). The fit
can overfit n <= d as much as it likes; a correlation that is an artefact of the fit
does not carry over to new probes. Identical members still give 1 (same weights, same
held-out variates); independent standard Gaussian members at n = 50 probes, d = 100
units give cca = 0.04 at ridge 0.1 (mean over 28 pairs, max 0.06: the chance level of a
squared correlation over 25 held-out probes, ~1/25), related ones 0.43
(tests/test_preconditions.py). Held-out correlations of
unrelated members can be slightly negative, so svcca and pwcca with a ridge can dip
below 0. ``ridge > 0`` needs n >= 6 probes (3 per half).

All pairs: the per-member SVDs are done once; plain CCA's ``||U_A^T U_B||_F^2`` for
all pairs is one product of stacked bases (see ``cka.linear_kernel_products``);
the other variants batch the pairs' small r_A x r_B SVDs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from alignlib.metrics.ranks import rank_tolerance
from ._common import DTYPE, Tensor, centre, centred_checked, check_nonnegative, require_probes
from ._registry import MetricInfo, register
from .cka import linear_kernel_products

PAIR_BATCH_ELEMENTS = 2 ** 24
#: ``ridge > 0`` fits on the even-indexed probes and correlates on the odd-indexed ones.
RIDGE_MIN_PROBES = 6


@dataclass(frozen=True)
class CCAState:
    """One member, reduced: orthonormal basis u (n x r), ridge factors f, singular values s,
    right singular vectors v (d x r; None after an SVCCA truncation) and, for ridge > 0,
    the held-out probes' coordinates t (n_held x r) in the basis ``A_c v / s`` (u, s, v then
    come from the fitting probes only)."""

    u: Tensor
    f: Tensor
    s: Tensor
    v: Tensor | None
    t: Tensor | None = None

    @property
    def rank(self) -> int:
        return self.u.shape[1]


def check_rank_eps(value, metric: str) -> float | None:
    """``rank_eps`` as a float, or None (float64 data); ValueError unless 0 < eps < 1."""
    if value is None:
        return None
    try:
        eps = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{metric}: rank_eps must be a number (the storage dtype's machine epsilon, "
                         f"e.g. numpy.finfo(numpy.float32).eps) or None, got {value!r}") from None
    if not (math.isfinite(eps) and 0.0 < eps < 1.0):
        raise ValueError(f"{metric}: rank_eps must lie in (0, 1), got {value!r}")
    return eps


def numerical_rank(s: Tensor, shape: tuple[int, int], norm: float, rank_eps: float | None) -> int:
    """Singular values above :func:`alignlib.metrics.ranks.rank_tolerance`."""
    if s.numel() == 0 or float(s[0]) == 0.0:
        return 0
    return int((s > rank_tolerance(float(s[0]), shape, norm, rank_eps)).sum())


def _reduce(x: Tensor, xc: Tensor, eps: float | None, variance: float | None) -> tuple[Tensor, Tensor, Tensor, int]:
    """Thin SVD of a centred matrix ``xc`` (of the stored values ``x``) cut to its numerical rank,
    then (SVCCA) to a variance fraction."""
    u, s, vh = torch.linalg.svd(xc, full_matrices=False)
    r = kept_rank(s, tuple(xc.shape), float(torch.linalg.norm(x)), eps, variance)
    return u[:, :r], s[:r], vh[:r].mT, r


def kept_rank(s: Tensor, shape: tuple[int, int], norm: float, eps: float | None, variance: float | None) -> int:
    """Directions kept from singular values ``s`` (descending) of a centred member of ``shape``:
    the :func:`numerical_rank`, then (SVCCA, ``variance`` not None) the fewest of those explaining
    that fraction of their variance."""
    r = numerical_rank(s, shape, norm, eps)
    if variance is not None and r > 0:
        frac = torch.cumsum(s[:r] * s[:r], 0) / (s[:r] * s[:r]).sum()
        target = torch.tensor([variance - 1e-12], dtype=DTYPE, device=s.device)
        r = min(r, int(torch.searchsorted(frac, target)) + 1)
    return r


def cca_state(x: Tensor, index: int, metric: str, ridge: float, variance: float | None = None,
              rank_eps: float | None = None) -> CCAState:
    """Centre, SVD (numerical rank at ``rank_eps``), optional PCA truncation, ridge factors.

    With ridge > 0 the basis comes from the even-indexed probes and ``t`` holds the
    odd-indexed probes (centred by their own mean) in that basis.
    """
    eps = check_rank_eps(rank_eps, metric)
    xc = centred_checked(x, index, metric)
    n, d = xc.shape
    if ridge == 0.0:
        u, s, v, r = _reduce(x, xc, eps, variance)
        if r >= n - 1:
            raise ValueError(
                f"{metric} with ridge=0 is degenerate: member {index} spans all n - 1 = {n - 1} centred "
                f"probe dimensions (width {d}{', after PCA ' + str(r) + ' components' if variance else ''}), "
                f"so every canonical correlation would be 1. Use more probes than units, or ridge > 0 "
                f"(e.g. ridge=0.1: canonical directions fitted on the even-indexed probes with a ridge of "
                f"0.1 x the mean variance per occupied direction, correlations measured on the odd-indexed "
                f"probes, so members unrelated beyond the fit score near 0), or svcca with a smaller "
                f"variance fraction")
        return CCAState(u=u, f=torch.ones_like(s), s=s, v=None if variance is not None else v)
    require_probes(n, RIDGE_MIN_PROBES, metric,
                   "ridge > 0 fits the canonical directions on the even-indexed probes and "
                   "correlates them on the odd-indexed ones")
    return split_state(x[0::2], x[1::2], index, metric, ridge, variance, eps, "the even-indexed probes")


def split_state(fit_x: Tensor, held_x: Tensor, index: int, metric: str, ridge: float,
                variance: float | None, eps: float | None, fit_name: str = "the fitting probes") -> CCAState:
    """A member reduced on its fitting probes ``fit_x`` (basis, ridge factors), with its held-out
    probes ``held_x`` (each set centred by its own mean) as coordinates ``t`` in that basis."""
    fit, held = centre(fit_x), centre(held_x)
    u, s, v, r = _reduce(fit_x, fit, eps, variance)
    if r == 0:
        raise ValueError(f"{metric}: member {index} is constant across {fit_name} used to fit the CCA "
                         f"directions")
    lam = ridge * float((s * s).mean())
    f = s / torch.sqrt(s * s + lam)
    t = (held @ v) / s
    return CCAState(u=u, f=f, s=s, v=None if variance is not None else v, t=t)


class _Stacks:
    """Members' reduced states stacked by shape, so that a batch of pairs is an index lookup."""

    def __init__(self, states: list[CCAState]):
        keys = [(st.rank, None if st.v is None else st.v.shape[0]) for st in states]
        self.key = keys
        self.slot = [keys[:i].count(k) for i, k in enumerate(keys)]
        self.w, self.f, self.fs, self.v, self.tf = {}, {}, {}, {}, {}
        for k in set(keys):
            group = [st for st, key in zip(states, keys) if key == k]
            self.w[k] = torch.stack([st.u * st.f for st in group])
            self.f[k] = torch.stack([st.f for st in group])
            self.fs[k] = torch.stack([st.f * st.s for st in group])
            self.v[k] = None if k[1] is None else torch.stack([st.v for st in group])
            self.tf[k] = None if group[0].t is None else torch.stack([st.t * st.f for st in group])

    def take(self, key, members: list[int]):
        idx = torch.tensor([self.slot[i] for i in members], device=self.w[key].device)
        v = None if self.v[key] is None else self.v[key][idx]
        tf = None if self.tf[key] is None else self.tf[key][idx]
        return self.w[key][idx], self.f[key][idx], self.fs[key][idx], v, tf


def _values(metric: str, side_a, side_b, held_out: bool):
    """(value(a, b), value(b, a)) for a batch of equally shaped pairs; they differ only for pwcca.

    ``side_*`` = (W = U F, f, f * s, V, T F) stacked over the batch. The canonical directions
    are the singular vectors of ``M = W_a^T W_b``. The correlations are M's singular values
    (in-sample: ridge = 0), or (``held_out``: ridge > 0, or :func:`heldout_cca`) the held-out
    correlations of the variates ``T_a F_a p_m`` and ``T_b F_b q_m``.
    """
    wa, fa, fsa, va, ta = side_a
    wb, fb, fsb, vb, tb = side_b
    m = wa.mT @ wb
    if metric != "pwcca" and not held_out:
        corr = torch.linalg.svdvals(m)
    else:
        p, sigma, qh = torch.linalg.svd(m, full_matrices=False)
        q = qh.mT
        if not held_out:
            corr = sigma / ((fa[:, :, None] * p).norm(dim=1) * (fb[:, :, None] * q).norm(dim=1))
        else:
            xa, xb = ta @ p, tb @ q                       # held-out variates, (batch, n_held, q)
            den = xa.norm(dim=1) * xb.norm(dim=1)
            corr = torch.where(den > 0, (xa * xb).sum(1) / torch.where(den > 0, den, 1.0), 0.0)
    if metric == "cca":
        v = (corr * corr).mean(-1)
        return v, v
    if metric == "svcca":
        v = corr.mean(-1)
        return v, v
    # Morcos et al.: alpha_m = sum_j |<h_m, a_j>|, h_m = W_a p_m / ||f_a * p_m||, a_j = U S V^T e_j
    # (with a ridge: on the fitting probes, where the directions were found)
    alpha_a = (va @ (fsa[:, :, None] * p)).abs().sum(1) / (fa[:, :, None] * p).norm(dim=1)
    alpha_b = (vb @ (fsb[:, :, None] * q)).abs().sum(1) / (fb[:, :, None] * q).norm(dim=1)
    return ((alpha_a * corr).sum(-1) / alpha_a.sum(-1),
            (alpha_b * corr).sum(-1) / alpha_b.sum(-1))


def _plain_cca_matrix(states: list[CCAState], pair: bool) -> Tensor:
    """Mean squared canonical correlation ``||U_a^T U_b||_F^2 / min(r_a, r_b)`` without per-pair SVDs."""
    ranks = torch.tensor([st.rank for st in states], dtype=DTYPE, device=states[0].u.device)
    if pair:
        return (states[0].u.mT @ states[1].u).square().sum() / torch.minimum(ranks[0], ranks[1])
    g = linear_kernel_products([st.u for st in states])
    out = g / torch.minimum(ranks[:, None], ranks[None, :])
    out = 0.5 * (out + out.mT)
    out.fill_diagonal_(1.0)
    return out


def _cca_family(members: list[Tensor], options: dict, pair: bool, metric: str) -> Tensor:
    ridge, variance, rank_eps = _family_options(metric, options)
    states = [cca_state(x, i, metric, ridge, variance, rank_eps) for i, x in enumerate(members)]
    if metric == "cca" and ridge == 0.0:
        return _plain_cca_matrix(states, pair)
    stacks = _Stacks(states)
    if pair:
        return _values(metric, stacks.take(stacks.key[0], [0]), stacks.take(stacks.key[1], [1]), ridge > 0.0)[0][0]
    S, n = len(states), members[0].shape[0]
    out = torch.ones(S, S, dtype=DTYPE, device=states[0].u.device)
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for i, j in zip(*torch.triu_indices(S, S, 1).tolist()):
        groups.setdefault((stacks.key[i], stacks.key[j]), []).append((i, j))
    for (ka, kb), pairs in groups.items():
        (ra, da), (rb, db) = ka, kb
        step = max(1, PAIR_BATCH_ELEMENTS // (n * (ra + rb) + ra * rb + (da or 0) * ra + (db or 0) * rb))
        for s in range(0, len(pairs), step):
            ii = [i for i, _ in pairs[s:s + step]]
            jj = [j for _, j in pairs[s:s + step]]
            vab, vba = _values(metric, stacks.take(ka, ii), stacks.take(kb, jj), ridge > 0.0)
            ti, tj = torch.tensor(ii, device=out.device), torch.tensor(jj, device=out.device)
            out[ti, tj] = vab
            out[tj, ti] = vba
    return out


def _family_options(metric: str, options: dict) -> tuple[float, float | None, float | None]:
    """(ridge, variance, rank_eps), validated."""
    ridge = check_nonnegative(options["ridge"], metric, "ridge")
    variance = None
    if metric == "svcca":
        variance = float(options["variance"])
        if not 0.0 < variance <= 1.0:
            raise ValueError(f"svcca: variance must be a fraction in (0, 1], got {options['variance']!r}")
    return ridge, variance, check_rank_eps(options["rank_eps"], metric)


def heldout_cca(metric: str):
    """The held-out score of ``metric`` (cca, svcca or pwcca) for :func:`alignlib.metrics.cross_validated`:
    canonical directions fitted on the training probes (with the metric's ridge, rank_eps and,
    for svcca, its PCA cut), correlations of the canonical variates on the held-out probes (each
    set centred by its own mean), summarised as the metric does (mean square, mean, or pwcca's
    weights from the training probes)."""
    def score(a: Tensor, b: Tensor, train: Tensor, test: Tensor, options: dict) -> Tensor:
        ridge, variance, eps = _family_options(metric, options)
        states = [split_state(x[train], x[test], i, metric, ridge, variance, eps, "the training probes")
                  for i, x in enumerate((a, b))]
        stacks = _Stacks(states)
        return _values(metric, stacks.take(stacks.key[0], [0]), stacks.take(stacks.key[1], [1]), True)[0][0]
    return score


def cca(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Mean squared canonical correlation, ``R^2_CCA = (1/q) sum_m rho_m^2``, q = min(r_A, r_B).

    (Kornblith et al. 2019's R^2_CCA; Hotelling 1936.) Range [0, 1], symmetric. With
    ridge = 0 (default) invariant to translation and any invertible linear map of the
    units (only the column spaces matter), hence also to scaling, orthogonal maps and
    permutations. ridge > 0 keeps translation, isotropic scaling, orthogonal and
    permutation invariance only. ridge = 0 refuses n - 1 <= rank (degenerate).
    """
    return _cca_family(members, options, pair, "cca")


def svcca(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """SVCCA (Raghu et al. 2017): PCA of each member to the fewest components explaining a
    ``variance`` fraction (default 0.99), then the mean canonical correlation
    ``(1/q) sum_m rho_m``, q = min(k_A, k_B). Range [0, 1], symmetric. Invariant to
    translation, isotropic scaling, orthogonal maps and permutations (PCA is equivariant
    to them); not to other invertible linear maps (they change which directions the
    PCA keeps).
    """
    return _cca_family(members, options, pair, "svcca")


def pwcca(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Projection-weighted CCA (Morcos et al. 2018): ``sum_m alpha_m rho_m / sum_m alpha_m`` with
    ``alpha_m = sum_j |<h_m, a_j>|``, h_m A's m-th unit-norm canonical variate and a_j A's
    centred unit j. Asymmetric: ``M[i, j]`` weights by member i. Range [0, 1]. Invariant to
    translation, isotropic scaling and permutations of the units; not to orthogonal or
    other invertible maps of A (the weights use A's units' L1 norm), although B enters
    only through its column space.
    """
    return _cca_family(members, options, pair, "pwcca")


CCA_PRECONDITIONS = (
    "With ridge = 0 needs n > rank + 1 probes and members that are not invertible linear maps of "
    "the probe inputs (centred activations spanning exactly the inputs' centred column space make "
    "every canonical correlation 1 by construction), the rank counted above the storage dtype's "
    "rounding (rank_eps); ridge > 0 (held-out correlations) lifts both conditions.")
_CCA_INV = frozenset({"translation", "isotropic_scaling", "orthogonal", "permutation"})
register(MetricInfo(
    name="cca", range=(0.0, 1.0), symmetric=True, invariances=_CCA_INV | {"invertible_linear"},
    needs="activations", options={"ridge": 0.0, "rank_eps": None},
    description="Mean squared canonical correlation; ridge > 0 regularises the covariances "
                "(scale-free, in units of the mean variance per occupied direction), fits the "
                "canonical directions on the even-indexed probes and reports their correlations "
                "on the odd-indexed ones, and then is not invertible-linear invariant; ridge = 0 "
                "with n - 1 <= rank is an error. rank_eps: the storage dtype's eps for the "
                "numerical rank (None = float64).",
    preconditions=CCA_PRECONDITIONS,
    reference="Hotelling 1936; Kornblith et al. 2019 (R^2_CCA)", impl=cca, heldout=heldout_cca("cca")))
register(MetricInfo(
    name="svcca", range=(0.0, 1.0), symmetric=True, invariances=_CCA_INV,
    needs="activations", options={"variance": 0.99, "ridge": 0.0, "rank_eps": None},
    description="PCA to a variance fraction, then mean canonical correlation (ridge and "
                "rank_eps as for cca).",
    preconditions="As cca, for the PCA-kept directions: with ridge = 0 uninformative (1 by "
                  "construction) when they span exactly the probe inputs' centred column space "
                  "or number n - 1 or more.",
    reference="Raghu et al. 2017, NeurIPS", impl=svcca, heldout=heldout_cca("svcca")))
register(MetricInfo(
    name="pwcca", range=(0.0, 1.0), symmetric=False,
    invariances=frozenset({"translation", "isotropic_scaling", "permutation"}),
    needs="activations", options={"ridge": 0.0, "rank_eps": None},
    description="Projection-weighted mean canonical correlation, weighted by the first "
                "member's units (asymmetric; ridge and rank_eps as for cca).",
    preconditions=CCA_PRECONDITIONS,
    reference="Morcos et al. 2018, NeurIPS", impl=pwcca, heldout=heldout_cca("pwcca")))
