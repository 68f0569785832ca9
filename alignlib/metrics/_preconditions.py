"""Per-call checks of the registry's preconditions: :class:`UninformativeWarning`.

``compare``, ``pairwise`` (and the distance and probe-interval functions) warn once per call
when the value they return is fixed, or bounded, by construction rather than by how the
members relate. The rules state, for one call's members, the conditions the registry's
``preconditions`` sentences name and that ``alignlib.metrics.preconditions`` checks for the
pipeline's grid points:

* ``cka_linear``, ``procrustes``: a member's centred numerical rank is n - 1 (it spans every
  centred probe direction, as any member with at least n - 1 generic units does). Then every
  other member is a linear map of it, and these metrics measure how the two spectra differ,
  not how the members relate: independent members score high (20 probes x 300 units,
  independent Gaussians: CKA 0.93, Procrustes 0.98). ``cka_linear_debiased`` is informative
  at any n / d (independent members give ~0) and is not flagged.
* ``cca``, ``svcca``, ``pwcca`` with ``ridge = 0``: a member of rank n - 1 makes every
  canonical correlation 1; that is already an error of the metric. Below that, two members of
  ranks r_a + r_b > n - 1 share at least k = r_a + r_b - (n - 1) directions of the (n - 1)-
  dimensional centred probe space, so at least k of their min(r_a, r_b) canonical correlations
  are 1 whatever the members compute. With ``ridge > 0`` the correlations are measured on held-
  out probes and neither applies.
* ``linear_predictivity``: a member whose rank is at least the number of probes of the
  smallest training set, n - ceil(n / folds): the centred training probes (at most
  n_train - 1 directions) cannot span it, so every fit misses directions of the held-out
  probes and even identical members score below 1.
* n = 2 is an error for every activation metric (``_common.MIN_PROBES``), not a warning.

Ranks are numerical ranks at the input's storage precision (``alignlib.metrics.ranks.rank_tolerance``
with the input dtype's eps), computed only when the widths allow the condition at all.
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch

from ._common import Tensor, centre
from ._registry import MetricInfo
from .cca import kept_rank

#: Where the warning sends its reader.
CHANCE_POINTER = (
    "Compare it with the chance level (the metric with one member's probes shuffled: "
    "alignlib.stats.permutation_baseline_pair or permutation_baseline), not with 0; silence with "
    "warnings.simplefilter('ignore', alignlib.metrics.UninformativeWarning)")

SPANNING_METRICS = ("cka_linear", "procrustes")
CCA_METRICS = ("cca", "svcca", "pwcca")


class UninformativeWarning(UserWarning):
    """A metric value that is fixed or bounded by construction, not evidence about the members.

    Emitted once per call of :func:`alignlib.metrics.compare` / :func:`~alignlib.metrics.pairwise`
    (and of the distance and probe-interval functions) when a registered precondition fails:
    too few probes for the members' rank for CKA / Procrustes / CCA, or training folds of
    ``linear_predictivity`` that cannot span a member. The message says which and why. A
    subclass of ``UserWarning``, so it can be filtered on its own::

        warnings.simplefilter("ignore", alignlib.metrics.UninformativeWarning)
    """


def member_rank(x: Tensor, eps: float | None, variance: float | None = None) -> int:
    """Numerical rank of the centred member (at the storage eps; ``variance``: SVCCA's PCA cut)."""
    s = torch.linalg.svdvals(centre(x))
    return kept_rank(s, tuple(x.shape), float(torch.linalg.norm(x)), eps, variance)


def _spanning_reason(members: list[Tensor], name: str, eps: float | None) -> str | None:
    n = members[0].shape[0]
    for i, x in enumerate(members):
        if x.shape[1] >= n - 1 and member_rank(x, eps) >= n - 1:
            return (f"member {i} ({n} probes x {x.shape[1]} units) spans all n - 1 = {n - 1} centred probe "
                    f"directions, so every other member is a linear map of it and {name} measures how "
                    f"their spectra differ, not how they relate (20 probes x 300 independent Gaussian "
                    f"units: CKA 0.93, Procrustes 0.98). Use more probes than units, or "
                    f"cka_linear_debiased")
    return None


def _cca_reason(members: list[Tensor], name: str, options: dict, eps: float | None) -> str | None:
    if float(options.get("ridge", 0.0)) > 0.0:
        return None
    n = members[0].shape[0]
    widths = sorted((x.shape[1] for x in members), reverse=True)
    if len(widths) < 2 or widths[0] + widths[1] <= n - 1:
        return None
    variance = float(options["variance"]) if name == "svcca" else None
    ranks = [member_rank(x, eps, variance) for x in members]
    if max(ranks) >= n - 1:
        return None                                 # the metric itself refuses this (an error)
    worst = None
    for i in range(len(ranks)):
        for j in range(i + 1, len(ranks)):
            k = ranks[i] + ranks[j] - (n - 1)
            q = min(ranks[i], ranks[j])
            if k > 0 and (worst is None or k / q > worst[0]):
                worst = (k / q, i, j, k, q)
    if worst is None:
        return None
    _, i, j, k, q = worst
    bound = "" if name == "pwcca" else f" ({name} >= {k / q:.3g} whatever the members compute)"
    return (f"members {i} and {j} have ranks {ranks[i]} and {ranks[j]} in the n - 1 = {n - 1} centred probe "
            f"dimensions, so their column spaces share at least {k} directions and at least {k} of their "
            f"{q} canonical correlations are 1 by construction{bound}. Use more probes than the two ranks "
            f"together, or ridge > 0 (held-out correlations)")


def _predictivity_reason(members: list[Tensor], options: dict, eps: float | None) -> str | None:
    folds = options.get("folds")
    if isinstance(folds, bool) or not isinstance(folds, numbers.Integral) or folds < 2:
        return None
    n = members[0].shape[0]
    n_train = n - math.ceil(n / folds)
    for i, x in enumerate(members):
        if x.shape[1] >= n_train:
            r = member_rank(x, eps)
            if r >= n_train:
                return (f"member {i} has rank {r} but the smallest training set has n - ceil(n / folds) = "
                        f"{n_train} probes (n = {n}, {folds} folds), whose centred values span at most "
                        f"{n_train - 1} directions: every fit misses directions of the held-out probes, so "
                        f"even identical members score below 1")
    return None


def uninformative_reason(members: list[Tensor], info: MetricInfo, options: dict,
                         eps: float | None) -> str | None:
    """None, or why ``info``'s value on these prepared members is fixed or bounded by construction."""
    if info.needs != "activations" or len(members) < 2:
        return None
    if info.name in SPANNING_METRICS:
        return _spanning_reason(members, info.name, eps)
    if info.name in CCA_METRICS:
        return _cca_reason(members, info.name, options, eps)
    if info.name == "linear_predictivity":
        return _predictivity_reason(members, options, eps)
    return None


def warn_if_uninformative(members: list[Tensor], info: MetricInfo, options: dict, eps: float | None,
                          stacklevel: int = 3) -> str | None:
    """Emit one :class:`UninformativeWarning` when :func:`uninformative_reason` finds a reason; return it.

    The check is skipped (and costs nothing) while the warning is filtered out ("ignore").
    """
    if _ignored():
        return None
    reason = uninformative_reason(members, info, options, eps)
    if reason is not None:
        warnings.warn(UninformativeWarning(f"{info.name}: {reason}. {CHANCE_POINTER}"), stacklevel=stacklevel)
    return reason


def _ignored() -> bool:
    """Whether the active warning filters drop UninformativeWarning unconditionally: the first filter
    that can apply to it is an "ignore" with no message, module or line condition."""
    for action, message, category, module, lineno in warnings.filters:
        if not issubclass(UninformativeWarning, category):
            continue
        if message is None and module is None and lineno == 0:
            return action == "ignore"
        return False                                # a conditional filter: only emitting can tell
    return False
