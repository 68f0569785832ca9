"""Neighbour-based metrics: information imbalance, k-NN overlap and mutual k-NN.

Neighbours are ranked per probe by a stable sort of its row of distances (or of
negated cosine similarities), so ties are broken by the lower probe index; the
probe itself is put first (rank 0) and excluded, its nearest neighbour has rank 1.
Each member's ranks are computed once; every pair is then a gather of member b's
ranks at member a's k nearest neighbours.
"""

from __future__ import annotations

import torch

from ._common import (
    Tensor,
    centred_checked,
    check_choice,
    check_k,
    cosine_normalise,
    sq_distances,
)
from ._registry import MetricInfo, register

ROTATION_SCALE_SHIFT = frozenset({"translation", "isotropic_scaling", "orthogonal", "permutation"})
DIRECTIONS = ("symmetric", "a_to_b", "b_to_a")


def neighbour_ranks(x: Tensor, index: int, metric: str, cosine: bool = False) -> tuple[Tensor, Tensor]:
    """(order, ranks) of one member: ``order[i]`` lists probes from nearest to farthest from
    probe i (itself first), ``ranks[i, j]`` is the position of j in ``order[i]``.

    Euclidean distances of the centred member, or (``cosine=True``) cosine similarity
    of the raw probe vectors.
    """
    xc = centred_checked(x, index, metric)
    n = x.shape[0]
    if cosine:
        xn = cosine_normalise(x, metric, "probe")
        key = -(xn @ xn.mT)
    else:
        key = sq_distances(xc)
    key.fill_diagonal_(-torch.inf)
    order = torch.sort(key, dim=1, stable=True).indices
    positions = torch.arange(n, device=x.device, dtype=torch.int32).expand(n, n)
    ranks = torch.empty(n, n, dtype=torch.int32, device=x.device).scatter_(1, order, positions)
    return order, ranks


def _ranks_of_neighbours(members: list[Tensor], k: int, metric: str, cosine: bool):
    """For each member a in turn, the (S, n, k) tensor whose [b, i, m] entry is the rank in
    member b of probe i's m-th nearest neighbour in member a (ranks computed once per member)."""
    states = [neighbour_ranks(x, i, metric, cosine) for i, x in enumerate(members)]
    ranks = torch.stack([r for _, r in states])                     # (S, n, n)
    nn = torch.stack([o[:, 1:k + 1] for o, _ in states])            # (S, n, k)
    S, n = ranks.shape[:2]
    for a in range(S):
        yield torch.gather(ranks, 2, nn[a].unsqueeze(0).expand(S, n, k))


def _overlap_matrix(members: list[Tensor], k: int, metric: str, cosine: bool) -> Tensor:
    n = members[0].shape[0]
    rows = [(g <= k).sum((1, 2)) for g in _ranks_of_neighbours(members, k, metric, cosine)]
    return torch.stack(rows).to(members[0].dtype) / (n * k)


def _finish(m: Tensor, pair: bool) -> Tensor:
    if pair:
        return m[0, 1]
    m.fill_diagonal_(1.0)
    return m


def imbalance_matrix(members: list[Tensor], k: int) -> Tensor:
    """``D[a, b]`` = Delta(a -> b) = (2/n) (mean rank in b of the k nearest neighbours in a - (k+1)/2)."""
    n = members[0].shape[0]
    rows = [g.sum((1, 2)) for g in _ranks_of_neighbours(members, k, "information_imbalance", False)]
    mean_rank = torch.stack(rows).to(members[0].dtype) / (n * k)
    return (2.0 / n) * (mean_rank - 0.5 * (k + 1))


def information_imbalance(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Alignment ``1 - Delta`` from the information imbalance (Glielmo et al. 2022, PNAS Nexus).

    ``Delta(A -> B) = (2/n) <r^B>`` with ``r^B`` the rank in B (nearest neighbour = 1) of each
    probe's nearest neighbour in A, averaged over probes; with ``k > 1`` the average runs
    over the k nearest neighbours in A. Here the minimum (k+1)/2 of that mean rank is
    subtracted, so identical spaces give Delta = 0 exactly (the plain formula gives
    (k+1)/n) and independent spaces Delta = 1 - (k+1)/n ~ 1; for k = 1 this is the usual
    (2/n) <r^B> shifted by 2/n. ``direction``: ``"a_to_b"`` gives 1 - Delta(A -> B) (how well
    A's neighbours predict B's), ``"b_to_a"`` 1 - Delta(B -> A), ``"symmetric"`` (default)
    1 - mean of the two. Range (-1, 1]. Euclidean distances: invariant to translation,
    isotropic scaling, orthogonal maps and permutations; not to other linear maps.
    """
    n = members[0].shape[0]
    k = check_k(options["k"], n, "information_imbalance")
    direction = check_choice(options["direction"], DIRECTIONS, "information_imbalance", "direction")
    delta = imbalance_matrix(members, k)
    if direction == "a_to_b":
        m = 1.0 - delta
    elif direction == "b_to_a":
        m = 1.0 - delta.mT
    else:
        m = 1.0 - 0.5 * (delta + delta.mT)
    return _finish(m, pair)


def neighborhood_overlap(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Mean over probes of ``|N_k^A(i) & N_k^B(i)| / k``, N_k the k nearest neighbours (Euclidean).

    Range [0, 1], symmetric. Invariant to translation, isotropic scaling, orthogonal maps
    and permutations (distances are unchanged up to a common factor); not to other
    invertible linear maps (they reorder neighbours).
    """
    n = members[0].shape[0]
    k = check_k(options["k"], n, "neighborhood_overlap")
    return _finish(_overlap_matrix(members, k, "neighborhood_overlap", cosine=False), pair)


def mutual_knn(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Mutual k-NN alignment of Huh et al. 2024 (ICML, "The platonic representation hypothesis").

    Each probe vector is L2-normalised, neighbours are the k largest inner products
    (cosine similarity, no centring), and the score is the mean fraction of shared
    neighbours. Range [0, 1], symmetric. Invariant to isotropic scaling, orthogonal maps
    and permutations (cosines unchanged); not to translation (cosines depend on the
    origin) nor to other invertible linear maps.
    """
    n = members[0].shape[0]
    k = check_k(options["k"], n, "mutual_knn")
    return _finish(_overlap_matrix(members, k, "mutual_knn", cosine=True), pair)


register(MetricInfo(
    name="information_imbalance", range=(-1.0, 1.0), symmetric=True, invariances=ROTATION_SCALE_SHIFT,
    needs="activations", options={"k": 1, "direction": "symmetric"},
    description="1 - information imbalance, Delta(A->B) = (2/n)(mean rank in B of A's k nearest "
                "neighbours - (k+1)/2); direction 'symmetric' (mean of both, default), 'a_to_b' "
                "or 'b_to_a' (the last two are asymmetric).",
    preconditions="Needs 1 <= k < n and neighbour ranks not decided by ties: uninformative where, "
                  "for most probes, the k-th and (k+1)-th Euclidean distances agree to within the "
                  "storage dtype's rounding (duplicated probes, quantised or collapsed layers).",
    reference="Glielmo et al. 2022, PNAS Nexus", impl=information_imbalance))
register(MetricInfo(
    name="neighborhood_overlap", range=(0.0, 1.0), symmetric=True, invariances=ROTATION_SCALE_SHIFT,
    needs="activations", options={"k": 10},
    description="Mean fraction of shared k nearest neighbours (Euclidean).",
    preconditions="Needs 1 <= k < n and neighbour sets not decided by ties: uninformative where, "
                  "for most probes, the k-th and (k+1)-th Euclidean distances agree to within the "
                  "storage dtype's rounding (duplicated probes, quantised or collapsed layers).",
    reference="e.g. Huh et al. 2024; Klabunde et al. 2023 (survey)", impl=neighborhood_overlap))
register(MetricInfo(
    name="mutual_knn", range=(0.0, 1.0), symmetric=True,
    invariances=frozenset({"isotropic_scaling", "orthogonal", "permutation"}),
    needs="activations", options={"k": 10},
    description="Mean fraction of shared k nearest neighbours by cosine similarity of "
                "L2-normalised probe vectors.",
    preconditions="Needs 1 <= k < n and cosine neighbour sets not decided by ties: uninformative "
                  "where, for most probes, the k-th and (k+1)-th cosine similarities agree to within "
                  "the storage dtype's rounding, e.g. a (near) rank-one layer whose probe vectors "
                  "are all (anti)parallel, a single-unit layer, or mostly silent ReLU probes.",
    reference="Huh et al. 2024, ICML", impl=mutual_knn))
