"""Representational similarity analysis (Kriegeskorte et al. 2008, Front. Syst. Neurosci.).

Each member's representational dissimilarity matrix (RDM) holds the correlation
distance ``1 - corr(x_i, x_j)`` between probes i and j (Pearson correlation of the two
probes' activation vectors across units; a probe constant across units counts as
uncorrelated with all others); RDMs are compared by the Pearson or
Spearman correlation of their upper triangles. All pairs: each member's RDM
triangle is ranked (Spearman) and standardised once, and all correlations are one
product of the stacked vectors.
"""

from __future__ import annotations

import torch

from ._common import (
    CONSTANT_RTOL,
    Tensor,
    average_ranks,
    centred_checked,
    check_choice,
    unit_gram,
    upper_triangle,
)
from ._registry import MetricInfo, register

METHODS = ("spearman", "pearson")
RDM_STD_MIN = 1e-10


def rdm_vector(x: Tensor, index: int, method: str) -> Tensor:
    """Upper triangle of the correlation-distance RDM, ranked for Spearman, centred and unit-norm."""
    if x.shape[1] < 2:
        raise ValueError(f"rsa: member {index} has a single unit; the correlation across units "
                         f"between probes (correlation distance) needs at least 2")
    centred_checked(x, index, "rsa")
    xr = x - x.mean(1, keepdim=True)
    norms = xr.norm(dim=1)
    # A probe with the same activation in every unit (e.g. all ReLUs silent) has no defined
    # correlation; by convention it is uncorrelated with every other probe (distance 1).
    flat = norms <= CONSTANT_RTOL * x.abs().amax(1) * x.shape[1] ** 0.5
    z = torch.where(flat[:, None], torch.zeros_like(xr), xr / torch.where(flat, torch.ones_like(norms), norms)[:, None])
    rdm = upper_triangle(1.0 - z @ z.mT)
    rdm = rdm - rdm.mean()
    if float(rdm.norm()) <= RDM_STD_MIN * rdm.numel() ** 0.5:
        raise ValueError(f"rsa: the RDM of member {index} is constant (all probes equally correlated), "
                         f"so its correlation with another RDM is undefined")
    if method == "spearman":
        rdm = average_ranks(rdm)
        rdm = rdm - rdm.mean()
    return rdm / rdm.norm()


def rsa(members: list[Tensor], options: dict, pair: bool) -> Tensor:
    """Correlation (Spearman by default, or Pearson) between correlation-distance RDMs.

    Range [-1, 1], symmetric. Invariant to isotropic scaling and to permutations of the
    units (probe-probe correlations unchanged); not to translation by a per-unit offset
    or to orthogonal maps (both change each probe's mean across units, which the
    correlation distance removes), nor to other invertible linear maps. Needs n >= 3.
    """
    method = check_choice(options["method"], METHODS, "rsa", "method")
    if members[0].shape[0] < 3:
        raise ValueError(f"rsa needs at least 3 probes (an RDM with >= 2 entries), got n = {members[0].shape[0]}")
    f = torch.stack([rdm_vector(x, i, method) for i, x in enumerate(members)])
    return unit_gram(f, pair)


register(MetricInfo(
    name="rsa", range=(-1.0, 1.0), symmetric=True,
    invariances=frozenset({"isotropic_scaling", "permutation"}),
    needs="activations", options={"method": "spearman"},
    description="Spearman (default) or Pearson correlation between correlation-distance RDMs.",
    preconditions="Needs >= 2 units, >= 3 probes and a non-constant RDM; probes constant across "
                  "units count as uncorrelated with all others, so a layer where most probes are "
                  "silent is dominated by that convention.",
    reference="Kriegeskorte et al. 2008", impl=rsa,
    distance="arccos(r) in [0, pi]: the angle between the centred (for Spearman: ranked) RDM "
             "triangles, whose cosine the correlation r is"))
