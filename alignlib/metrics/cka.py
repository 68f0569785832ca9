"""Centred kernel alignment: linear, debiased linear and RBF.

For Gram matrices ``K = X X^T`` and ``L = Y Y^T`` of two members,

    CKA(K, L) = <K', L'>_F / (||K'||_F ||L'||_F),

with ``K' = H K H`` (H the centring matrix) for the usual, biased estimator
(Kornblith et al. 2019, "Similarity of neural network representations revisited",
ICML) and ``K'`` the U-centred matrix for the debiased one (Song et al. 2012,
JMLR "Feature selection via dependence maximization"; Szekely & Rizzo 2014,
"Partial distance correlation"), whose inner product is n(n-3) times the
unbiased HSIC estimator.

All pairs at once: the (S, S) matrix of inner products ``<K'_i, K'_j>`` is one
product of stacked, flattened Gram matrices (built in row blocks, upper block
triangle only), or, when n is large compared with the widths, of the stacked
centred features (``<HK_iH, HK_jH> = ||X_ci^T X_cj||_F^2``).
"""

from __future__ import annotations

import math

import torch

from ._common import (
    DTYPE,
    Tensor,
    centred_checked,
    median,
    require_probes,
    sq_distances,
    upper_triangle,
)
from ._registry import MetricInfo, register

ROTATION_SCALE_SHIFT = frozenset({"translation", "isotropic_scaling", "orthogonal", "permutation"})


# ------------------------------------------------------------- linear-kernel engine


def _ucentre_stats(xs: list[Tensor]):
    """Per member: diag(K), K~1 (row sums of K with zeroed diagonal), 1^T K~ 1."""
    a = torch.stack([(x * x).sum(1) for x in xs])                    # (S, n)
    u = [x.sum(0) for x in xs]
    s = torch.stack([x @ ui for x, ui in zip(xs, u)]) - a            # (S, n)
    t = torch.stack([ui @ ui for ui in u]) - a.sum(1)                # (S,)
    return a, s, t


def _feature_route(xs: list[Tensor], ucentre: bool) -> Tensor:
    """``G[i, j] = ||X_i^T X_j||_F^2`` from one product per member with all later members."""
    S, n = len(xs), xs[0].shape[0]
    device = xs[0].device
    widths = [x.shape[1] for x in xs]
    z = torch.cat(xs, 1)
    member_of_col = torch.repeat_interleave(torch.arange(S, device=device),
                                            torch.tensor(widths, device=device))
    offsets = [0]
    for w in widths:
        offsets.append(offsets[-1] + w)
    g = torch.zeros(S, S, dtype=DTYPE, device=device)
    for i in range(S):
        col_sq = (xs[i].mT @ z[:, offsets[i]:]).square().sum(0)
        g[i].index_add_(0, member_of_col[offsets[i]:], col_sq)
    g = g.triu() + g.triu(1).mT
    if ucentre:
        # Song et al. 2012, eq. 5: n(n-3) HSIC_u = tr(K~L~) + 1'K~1 1'L~1/((n-1)(n-2)) - 2/(n-2) 1'K~L~1
        a, s, t = _ucentre_stats(xs)
        g = g - a @ a.mT + torch.outer(t, t) / ((n - 1) * (n - 2)) - 2.0 * (s @ s.mT) / (n - 2)
    return g


def _gram_route(xs: list[Tensor], ucentre: bool, chunk: int) -> Tensor:
    """``G[i, j] = <K'_i, K'_j>_F`` from stacked Gram matrices, built row block by row block.

    Only blocks on or above the diagonal are formed; the off-diagonal ones count twice.
    U-centring off the diagonal is ``U_ij = K_ij + alpha_i + beta_j`` with
    ``beta = -s/(n-2)``, ``alpha = beta + t/((n-1)(n-2))`` (s = K~1, t = 1'K~1).
    """
    S, n = len(xs), xs[0].shape[0]
    device = xs[0].device
    stacked = torch.stack(xs) if len({x.shape[1] for x in xs}) == 1 else None
    if ucentre:
        _, s, t = _ucentre_stats(xs)
        beta = -s / (n - 2)
        alpha = beta + (t / ((n - 1) * (n - 2)))[:, None]
    g = torch.zeros(S, S, dtype=DTYPE, device=device)
    for r0 in range(0, n, chunk):
        r1 = min(n, r0 + chunk)
        b = r1 - r0
        if stacked is not None:
            k = stacked[:, r0:r1] @ stacked[:, r0:].mT                   # (S, b, n - r0)
        else:
            k = torch.stack([x[r0:r1] @ x[r0:].mT for x in xs])
        if ucentre:
            k += alpha[:, r0:r1, None]
            k += beta[:, None, r0:]
            diag = torch.arange(b, device=device)
            k[:, diag, diag] = 0.0
        k[:, :, b:] *= math.sqrt(2.0)
        f = k.reshape(S, -1)
        g += f @ f.mT
    return g


def choose_route(n: int, widths: list[int]) -> str:
    """The cheaper of the two routes, by multiply-add count."""
    tail, feature = 0, 0
    for w in reversed(widths):
        tail += w
        feature += n * w * tail
    S = len(widths)
    gram = 0.5 * n * n * sum(widths) + 0.5 * S * S * n * n
    return "feature" if feature <= gram else "gram"


def linear_kernel_products(xs: list[Tensor], ucentre: bool = False, route: str = "auto",
                           chunk: int = 64) -> Tensor:
    """(S, S) Frobenius inner products of the members' linear Gram matrices.

    With ``ucentre=False`` the members must already be centred (then ``X X^T = H K H``);
    with ``ucentre=True`` the Gram matrices are U-centred (any members).
    """
    if route == "auto":
        route = choose_route(xs[0].shape[0], [x.shape[1] for x in xs])
    if route == "feature":
        return _feature_route(xs, ucentre)
    if route == "gram":
        return _gram_route(xs, ucentre, chunk)
    raise ValueError(f"route must be 'auto', 'feature' or 'gram', got {route!r}")


def _normalise(g: Tensor, metric: str) -> Tensor:
    d = g.diagonal()
    bad = torch.nonzero(d <= 0).flatten()
    if bad.numel():
        raise ValueError(f"{metric}: member {int(bad[0])} has a zero (or negative) self-similarity "
                         f"estimate, so its CKA is undefined")
    return g / torch.sqrt(torch.outer(d, d))


def _result(c: Tensor, pair: bool) -> Tensor:
    if pair:
        return c[0, 1]
    c = 0.5 * (c + c.mT)
    c.fill_diagonal_(1.0)
    return c


# --------------------------------------------------------------------------- metrics


def cka_linear(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Linear CKA, ``||X_c^T Y_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)`` (Kornblith et al. 2019).

    Range [0, 1]. Invariant to translation (centring), isotropic scaling (normalised),
    orthogonal maps and unit permutations (Gram matrices unchanged); not to other
    invertible linear maps (an anisotropic scaling changes the Gram matrix's spectrum).
    """
    xs = [centred_checked(x, i, "cka_linear") for i, x in enumerate(members)]
    return _result(_normalise(linear_kernel_products(xs), "cka_linear"), pair)


def cka_linear_debiased(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Debiased linear CKA: CKA with the unbiased HSIC estimator (U-centred Gram matrices).

    ``HSIC_u(K, L) = [tr(K~L~) + 1'K~1 1'L~1/((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))``
    with ``K~`` = K with zeroed diagonal (Song et al. 2012), equal to the inner product
    of U-centred matrices over n(n-3) (Szekely & Rizzo 2014). The cross term may be
    negative (range [-1, 1]); the self terms are squared norms, so no square root of a
    negative number and no NaN. Needs n >= 4. Same invariances as ``cka_linear``.
    """
    n = members[0].shape[0]
    require_probes(n, 4, "cka_linear_debiased", "the unbiased HSIC estimator divides by n(n-3)")
    xs = [centred_checked(x, i, "cka_linear_debiased") for i, x in enumerate(members)]
    return _result(_normalise(linear_kernel_products(xs, ucentre=True), "cka_linear_debiased"), pair)


def _rbf_centred(x: Tensor, index: int, bandwidth: float) -> Tensor:
    """H K H / ||H K H||_F for ``K = exp(-|x_i - x_j|^2 / (2 sigma^2))``, sigma = bandwidth * median distance."""
    xc = centred_checked(x, index, "cka_rbf")
    d2 = sq_distances(xc)
    med = median(upper_triangle(d2).sqrt())
    if float(med) <= 0.0:
        raise ValueError(f"cka_rbf: member {index} has a zero median pairwise distance (more than half "
                         f"of the probe pairs coincide), so the RBF bandwidth is undefined")
    sigma = bandwidth * med
    k = torch.exp(-d2 / (2.0 * sigma * sigma))
    kc = k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()
    norm = kc.norm()
    if float(norm) == 0.0:
        raise ValueError(f"cka_rbf: the centred RBF kernel of member {index} is zero")
    return kc / norm


def cka_rbf(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """RBF-kernel CKA with bandwidth sigma = ``bandwidth`` x the median pairwise distance.

    ``CKA = <HKH, HLH>_F / (||HKH||_F ||HLH||_F)``, ``K_ij = exp(-|x_i - x_j|^2 / (2 sigma^2))``
    (Kornblith et al. 2019). Range [0, 1]. Invariant to translation, orthogonal maps and
    unit permutations (distances unchanged) and to isotropic scaling (sigma scales with
    the distances); not to other invertible linear maps.
    """
    bandwidth = float(options["bandwidth"])
    if not (math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"cka_rbf: bandwidth must be a positive fraction of the median distance, "
                         f"got {options['bandwidth']!r}")
    f = torch.stack([_rbf_centred(x, i, bandwidth) for i, x in enumerate(members)])
    f = f.reshape(len(members), -1)
    if pair:
        return f[0] @ f[1]
    c = f @ f.mT
    return _result(c, pair)


register(MetricInfo(
    name="cka_linear", range=(0.0, 1.0), symmetric=True, invariances=ROTATION_SCALE_SHIFT,
    needs="activations", options={},
    description="Linear CKA: normalised HSIC of centred linear Gram matrices.",
    preconditions="Needs members that are not constant over probes; with fewer probes than units "
                  "(n << d) even independent members score high (about d / (n + d) for isotropic "
                  "ones), so read it against a permutation baseline there.",
    reference="Kornblith et al. 2019, ICML", impl=cka_linear,
    distance="arccos(CKA) in [0, pi/2]: the angle between the centred Gram matrices HKH and HLH as "
             "vectors (CKA is their cosine), a metric on members up to translation, scaling and "
             "orthogonal maps (Williams et al. 2021)"))
register(MetricInfo(
    name="cka_linear_debiased", range=(-1.0, 1.0), symmetric=True, invariances=ROTATION_SCALE_SHIFT,
    needs="activations", options={},
    description="Linear CKA with the unbiased HSIC estimator (U-centring); ~0 for independent "
                "representations, may be negative; needs n >= 4.",
    preconditions="Needs n >= 4 probes and non-constant members; informative at any n / d "
                  "(independent members give ~0), though noisy when n is small.",
    reference="Song et al. 2012, JMLR; Szekely & Rizzo 2014, Ann. Stat.", impl=cka_linear_debiased,
    distance="arccos(debiased CKA) in [0, pi]: the angle between the U-centred Gram matrices (the "
             "debiased CKA is their cosine)"))
register(MetricInfo(
    name="cka_rbf", range=(0.0, 1.0), symmetric=True, invariances=ROTATION_SCALE_SHIFT,
    needs="activations", options={"bandwidth": 0.8},
    description="RBF-kernel CKA; sigma = bandwidth x median pairwise Euclidean distance.",
    preconditions="Needs non-constant members with a non-zero median pairwise distance; "
                  "uninformative when the kernel is all ones or the identity (e.g. most probes "
                  "duplicated, or a bandwidth far from the data's scale).",
    reference="Kornblith et al. 2019, ICML", impl=cka_rbf,
    distance="arccos(CKA) in [0, pi/2]: the angle between the centred RBF kernel matrices"))
