"""Orthogonal Procrustes similarity via the nuclear norm.

For centred members scaled to unit Frobenius norm, ``A~ = A_c/||A_c||_F``,
``B~ = B_c/||B_c||_F``, the orthogonal Procrustes distance is
``d^2 = min_Q ||A~ - B~ Q||_F^2 = 2 - 2 ||A~^T B~||_*`` (Schoenemann 1966; with
different widths Q is a partial isometry, the same formula holds). The default
score is ``1 - d^2/2 = ||A~^T B~||_*`` in [0, 1]; ``kind="angular"`` gives
``1 - (2/pi) arccos(||A~^T B~||_*)``, one minus the normalised Procrustes angle of
Williams et al. 2021 ("Generalized shape metrics on neural representations").

All pairs: each member is reduced to an n x min(n, d) factor with the same Gram
matrix (QR of A~^T when d > n, so any n < d works), the cross products of all
pairs are one batched matmul and their singular values one batched ``svdvals``.
"""

from __future__ import annotations

import math

import torch

from ._common import Tensor, centre, centred_checked, check_choice
from ._registry import MetricInfo, register

KINDS = ("nuclear", "angular")
PAIR_BATCH_ELEMENTS = 2 ** 24


def procrustes_factor(x: Tensor, index: int) -> Tensor:
    """n x min(n, d) matrix F with ``F F^T = A~ A~^T`` (so singular values of F_a^T F_b are those of A~^T B~)."""
    y = centred_checked(x, index, "procrustes")
    y = y / y.norm()
    n, d = y.shape
    if d > n:
        r = torch.linalg.qr(y.mT, mode="r").R                  # y^T = Q R, y = R^T Q^T
        y = r.mT
    return y


def _score(nuc: Tensor, kind: str) -> Tensor:
    if kind == "angular":
        return 1.0 - (2.0 / math.pi) * torch.arccos(nuc.clamp(max=1.0))
    return nuc


def _pair_nuclear(fa: Tensor, fb: Tensor) -> Tensor:
    return torch.linalg.svdvals(fa.mT @ fb).sum(-1)


def procrustes(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Orthogonal Procrustes similarity ``||A~^T B~||_*`` = 1 - d^2/2 (or its angular form).

    Range [0, 1], symmetric. Invariant to translation (centring), isotropic scaling
    (unit norm), orthogonal maps and permutations (absorbed by Q); not to other
    invertible linear maps.
    """
    kind = check_choice(options["kind"], KINDS, "procrustes", "kind")
    factors = [procrustes_factor(x, i) for i, x in enumerate(members)]
    if pair:
        return _score(_pair_nuclear(factors[0], factors[1]), kind)
    return _all_pairs(factors, kind)


def _all_pairs(factors: list[Tensor], kind: str) -> Tensor:
    """Scores of all pairs i < j, batched by the pair's pair of widths."""
    S, n = len(factors), factors[0].shape[0]
    device = factors[0].device
    widths = [f.shape[1] for f in factors]
    stacks = {w: torch.stack([f for f in factors if f.shape[1] == w]) for w in set(widths)}
    slot = [sum(1 for v in widths[:i] if v == w) for i, w in enumerate(widths)]
    out = torch.ones(S, S, dtype=factors[0].dtype, device=device)
    ii, jj = torch.triu_indices(S, S, 1).tolist()
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, j in zip(ii, jj):
        groups.setdefault((widths[i], widths[j]), []).append((i, j))
    for (wa, wb), pairs in groups.items():
        step = max(1, PAIR_BATCH_ELEMENTS // (wa * wb + n * (wa + wb)))
        for s in range(0, len(pairs), step):
            i_idx = torch.tensor([i for i, _ in pairs[s:s + step]], device=device)
            j_idx = torch.tensor([j for _, j in pairs[s:s + step]], device=device)
            fa = stacks[wa][torch.tensor([slot[i] for i, _ in pairs[s:s + step]], device=device)]
            fb = stacks[wb][torch.tensor([slot[j] for _, j in pairs[s:s + step]], device=device)]
            val = _score(_pair_nuclear(fa, fb), kind)
            out[i_idx, j_idx] = val
            out[j_idx, i_idx] = val
    return out

def heldout_procrustes(a: Tensor, b: Tensor, train: Tensor, test: Tensor, options: dict) -> Tensor:
    """Held-out Procrustes score for :func:`alignlib.metrics.cross_validated`.

    Fit: the orthogonal map Q (d_b x d_a, a partial isometry when the widths differ) that best
    aligns the centred training probes, ``max_Q <A_tr, B_tr Q>``, i.e. ``Q = V U^T`` for
    ``A_tr^T B_tr = U S V^T`` (scale and translation are free, so neither is fitted). Score:
    ``<A_te, B_te Q> / (||A_te||_F ||B_te||_F)`` on the held-out probes, each centred by its own
    mean -- the held-out counterpart of ``||A~^T B~||_*`` (which is that cosine with Q fitted on
    the same probes), or its angular form with ``kind='angular'``. Identical members score 1
    when the training probes span them; independent members about 0, while in-sample they
    score well above 0 when n is not large against the widths.
    """
    kind = check_choice(options["kind"], KINDS, "procrustes", "kind")
    for i, x in enumerate((a, b)):
        centred_checked(x[train], i, "procrustes")
        centred_checked(x[test], i, "procrustes")
    a_tr, b_tr = centre(a[train]), centre(b[train])
    u, _, vh = torch.linalg.svd(a_tr.mT @ b_tr, full_matrices=False)
    q = vh.mT @ u.mT                                            # d_b x d_a
    a_te, b_te = centre(a[test]), centre(b[test])
    cosine = (a_te * (b_te @ q)).sum() / (a_te.norm() * b_te.norm())
    if kind == "angular":
        return 1.0 - (2.0 / math.pi) * torch.arccos(cosine.clamp(-1.0, 1.0))
    return cosine


register(MetricInfo(
    name="procrustes", range=(0.0, 1.0), symmetric=True,
    invariances=frozenset({"translation", "isotropic_scaling", "orthogonal", "permutation"}),
    needs="activations", options={"kind": "nuclear"},
    description="Orthogonal Procrustes similarity of centred, unit-norm members: ||A^T B||_* "
                "= 1 - d^2/2 with d the Procrustes distance (kind='nuclear', default), or "
                "1 - (2/pi) arccos(||A^T B||_*) (kind='angular').",
    preconditions="Needs members that are not constant over probes; like linear CKA it scores "
                  "independent members high when n << d, so read it against a permutation "
                  "baseline there.",
    reference="Schoenemann 1966; Williams et al. 2021, NeurIPS", impl=procrustes,
    distance="arccos(||A~^T B~||_*) in [0, pi/2]: the angular Procrustes shape distance of Williams et "
             "al. 2021 (netrep's angular distance), a metric on members up to translation, scaling and "
             "orthogonal maps (computed from kind='nuclear')",
    heldout=heldout_procrustes))
