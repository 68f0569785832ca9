"""Cosine similarity of whole maps (e.g. the end-to-end weight product of a linear network)."""

from __future__ import annotations

import torch

from ._common import Tensor, unit_gram
from ._registry import MetricInfo, register


def cosine_end_to_end(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """``<W_A, W_B>_F / (||W_A||_F ||W_B||_F)`` of the flattened members.

    Members are whole maps of one shape, e.g. (d_in, d_out) end-to-end products of
    linear networks (reps (S, d_in, d_out)) or vectors (reps (S, d)). Range [-1, 1]
    (can be negative), symmetric. Invariant to positive isotropic scaling of either
    member, and to the same orthogonal map (or permutation) of the units applied to
    both members (inner products are preserved); not to translation, to different
    maps on the two members, or to other invertible linear maps.
    """
    f = torch.stack(members)
    norms = f.norm(dim=1)
    bad = torch.nonzero(norms == 0).flatten()
    if bad.numel():
        raise ValueError(f"cosine_end_to_end: member {int(bad[0])} is all zeros, so its cosine is undefined")
    f = f / norms[:, None]
    return unit_gram(f, pair)


register(MetricInfo(
    name="cosine_end_to_end", range=(-1.0, 1.0), symmetric=True,
    invariances=frozenset({"isotropic_scaling", "orthogonal", "permutation"}),
    joint_invariances=frozenset({"orthogonal", "permutation"}),
    needs="end_to_end", options={},
    description="Cosine similarity of flattened end-to-end maps (reps (S, d_in, d_out) or (S, d)); "
                "orthogonal/permutation invariance only when applied to both members.",
    preconditions="Needs the end-to-end maps of linear networks (stored at the last layer only); "
                  "informative whenever the maps are non-zero.",
    reference="", impl=cosine_end_to_end,
    distance="arccos(cosine) in [0, pi]: the angle between the flattened maps"))
