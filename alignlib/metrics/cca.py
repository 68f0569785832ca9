"""Canonical correlation metrics: mean squared CCA, SVCCA and PWCCA, with an optional ridge.

Each member is centred and reduced once to its thin SVD ``A_c = U S V^T`` (rank r).
Plain CCA's canonical correlations between A and B are the singular values of
``U_A^T U_B`` (Bjorck & Golub 1973). With ``ridge = lam > 0`` the covariance
``A_c^T A_c`` is replaced by ``A_c^T A_c + lam' I`` with ``lam' = lam x`` (mean
per-unit sum of squares, so lam is scale-free); the canonical directions are those
of ``M = (U_A F_A)^T (U_B F_B)``, ``F = diag(s / sqrt(s^2 + lam'))``, and the
reported correlation of each pair of directions is the actual correlation of the
two canonical variates, ``sigma_m / (||F_A p_m|| ||F_B q_m||)``. So identical
members still give 1, while n < d no longer makes every correlation 1 (with
ridge = 0 and a member spanning all n - 1 centred probe dimensions that is what
happens, so it is refused with a ValueError).

All pairs: the per-member SVDs are done once; plain CCA's ``||U_A^T U_B||_F^2`` for
all pairs is one product of stacked bases (see ``cka.linear_kernel_products``);
the other variants batch the pairs' small r_A x r_B SVDs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._common import DTYPE, Tensor, centred_checked, check_nonnegative
from ._registry import MetricInfo, register
from .cka import linear_kernel_products

PAIR_BATCH_ELEMENTS = 2 ** 24


@dataclass(frozen=True)
class CCAState:
    """One member, reduced: orthonormal basis u (n x r), ridge factors f, singular values s,
    right singular vectors v (d x r; None after an SVCCA truncation)."""

    u: Tensor
    f: Tensor
    s: Tensor
    v: Tensor | None

    @property
    def rank(self) -> int:
        return self.u.shape[1]


def cca_state(x: Tensor, index: int, metric: str, ridge: float, variance: float | None = None) -> CCAState:
    """Centre, SVD (numerical rank as numpy.linalg.matrix_rank), optional PCA truncation, ridge factors."""
    xc = centred_checked(x, index, metric)
    n, d = xc.shape
    u, s, vh = torch.linalg.svd(xc, full_matrices=False)
    tol = s[0] * max(n, d) * torch.finfo(DTYPE).eps
    r = int((s > tol).sum())
    u, s, v = u[:, :r], s[:r], vh[:r].mT
    units = d
    if variance is not None:
        frac = torch.cumsum(s * s, 0) / (s * s).sum()
        target = torch.tensor([variance - 1e-12], dtype=DTYPE, device=x.device)
        r = min(r, int(torch.searchsorted(frac, target)) + 1)
        u, s, v = u[:, :r], s[:r], None
        units = r
    if ridge == 0.0:
        if r >= n - 1:
            raise ValueError(
                f"{metric} with ridge=0 is degenerate: member {index} spans all n - 1 = {n - 1} centred "
                f"probe dimensions (width {d}{', after PCA ' + str(r) + ' components' if variance else ''}), "
                f"so every canonical correlation would be 1. Use more probes than units, a ridge > 0 "
                f"(e.g. ridge=0.1) or svcca with a smaller variance fraction")
        f = torch.ones_like(s)
    else:
        lam = ridge * (s * s).sum() / units
        f = s / torch.sqrt(s * s + lam)
    return CCAState(u=u, f=f, s=s, v=v)


class _Stacks:
    """Members' reduced states stacked by shape, so that a batch of pairs is an index lookup."""

    def __init__(self, states: list[CCAState]):
        keys = [(st.rank, None if st.v is None else st.v.shape[0]) for st in states]
        self.key = keys
        self.slot = [keys[:i].count(k) for i, k in enumerate(keys)]
        self.w, self.f, self.fs, self.v = {}, {}, {}, {}
        for k in set(keys):
            group = [st for st, key in zip(states, keys) if key == k]
            self.w[k] = torch.stack([st.u * st.f for st in group])
            self.f[k] = torch.stack([st.f for st in group])
            self.fs[k] = torch.stack([st.f * st.s for st in group])
            self.v[k] = None if k[1] is None else torch.stack([st.v for st in group])

    def take(self, key, members: list[int]):
        idx = torch.tensor([self.slot[i] for i in members], device=self.w[key].device)
        v = None if self.v[key] is None else self.v[key][idx]
        return self.w[key][idx], self.f[key][idx], self.fs[key][idx], v


def _values(metric: str, side_a, side_b, ridge: float):
    """(value(a, b), value(b, a)) for a batch of equally shaped pairs; they differ only for pwcca.

    ``side_*`` = (W = U F, f, f * s, V) stacked over the batch. The canonical correlations are
    the singular values of ``M = W_a^T W_b`` (ridge = 0), or the actual correlations of the
    canonical variates ``W_a p_m`` and ``W_b q_m`` (ridge > 0).
    """
    wa, fa, fsa, va = side_a
    wb, fb, fsb, vb = side_b
    m = wa.mT @ wb
    if metric != "pwcca" and ridge == 0.0:
        corr = torch.linalg.svdvals(m)
    else:
        p, sigma, qh = torch.linalg.svd(m, full_matrices=False)
        q = qh.mT
        corr = sigma / ((fa[:, :, None] * p).norm(dim=1) * (fb[:, :, None] * q).norm(dim=1))
    if metric == "cca":
        v = (corr * corr).mean(-1)
        return v, v
    if metric == "svcca":
        v = corr.mean(-1)
        return v, v
    # Morcos et al.: alpha_m = sum_j |<h_m, a_j>|, h_m = W_a p_m / ||f_a * p_m||, a_j = U S V^T e_j
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
    ridge = check_nonnegative(options["ridge"], metric, "ridge")
    variance = None
    if metric == "svcca":
        variance = float(options["variance"])
        if not 0.0 < variance <= 1.0:
            raise ValueError(f"svcca: variance must be a fraction in (0, 1], got {options['variance']!r}")
    states = [cca_state(x, i, metric, ridge, variance) for i, x in enumerate(members)]
    if metric == "cca" and ridge == 0.0:
        return _plain_cca_matrix(states, pair)
    stacks = _Stacks(states)
    if pair:
        return _values(metric, stacks.take(stacks.key[0], [0]), stacks.take(stacks.key[1], [1]), ridge)[0][0]
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
            vab, vba = _values(metric, stacks.take(ka, ii), stacks.take(kb, jj), ridge)
            ti, tj = torch.tensor(ii, device=out.device), torch.tensor(jj, device=out.device)
            out[ti, tj] = vab
            out[tj, ti] = vba
    return out


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


_CCA_INV = frozenset({"translation", "isotropic_scaling", "orthogonal", "permutation"})
register(MetricInfo(
    name="cca", range=(0.0, 1.0), symmetric=True, invariances=_CCA_INV | {"invertible_linear"},
    needs="activations", options={"ridge": 0.0},
    description="Mean squared canonical correlation; ridge > 0 regularises the covariances "
                "(scale-free, in units of the mean per-unit variance) and then is not "
                "invertible-linear invariant; ridge = 0 with n - 1 <= width is an error.",
    reference="Hotelling 1936; Kornblith et al. 2019 (R^2_CCA)", impl=cca))
register(MetricInfo(
    name="svcca", range=(0.0, 1.0), symmetric=True, invariances=_CCA_INV,
    needs="activations", options={"variance": 0.99, "ridge": 0.0},
    description="PCA to a variance fraction, then mean canonical correlation.",
    reference="Raghu et al. 2017, NeurIPS", impl=svcca))
register(MetricInfo(
    name="pwcca", range=(0.0, 1.0), symmetric=False,
    invariances=frozenset({"translation", "isotropic_scaling", "permutation"}),
    needs="activations", options={"ridge": 0.0},
    description="Projection-weighted mean canonical correlation, weighted by the first "
                "member's units (asymmetric).",
    reference="Morcos et al. 2018, NeurIPS", impl=pwcca))
