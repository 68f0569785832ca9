"""The metric registry: one frozen :class:`MetricInfo` per metric, plus its implementation.

An implementation is a function ``impl(members, options, pair) -> Tensor`` that gets
validated float64 members (``(n, d_i)`` activations, or flat vectors for end-to-end
metrics) on one device and returns the full ``(S, S)`` matrix ``M[i, j] = metric(i, j)``
when ``pair`` is false, or the 0-d value ``metric(members[0], members[1])`` when
``pair`` is true (then ``len(members) == 2``).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from alignlib.names import METRIC_LABELS, METRIC_NAMES

#: The transformations a metric can be invariant to. Each acts on the units (columns)
#: of one member: ``X -> X + 1 c^T``, ``X -> a X`` (a > 0), ``X -> X Q`` (Q orthogonal),
#: ``X -> X M`` (M invertible), ``X -> X P`` (P a permutation matrix).
TRANSFORMATIONS = frozenset({"translation", "isotropic_scaling", "orthogonal", "invertible_linear",
                             "permutation"})


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is and what it is invariant to (for its default options).

    ``invariances`` lists the transformations under which ``metric(T(A), B)`` and
    ``metric(A, T(B))`` equal ``metric(A, B)``; those also in ``joint_invariances`` only
    leave it unchanged when the same transformation is applied to both members.
    ``needs`` is ``"activations"`` (members are (n probes, d units)) or ``"end_to_end"``
    (members are whole maps, e.g. (d_in, d_out) weight products, compared flattened).
    ``preconditions`` says, in one sentence, when the metric is informative: outside those
    conditions it returns a number fixed by construction (e.g. CCA = 1), not evidence.
    ``alignlib.metrics.preconditions`` detects the violations it can test on one grid point, and
    ``compare``/``pairwise`` warn about those they can test on one call
    (:class:`~alignlib.metrics.UninformativeWarning`).
    """

    name: str
    range: tuple[float, float]
    symmetric: bool
    invariances: frozenset[str]
    needs: str
    options: Mapping[str, object] = field(hash=False)
    description: str
    reference: str
    joint_invariances: frozenset[str] = frozenset()
    preconditions: str = ""
    impl: Callable = field(repr=False, compare=False, default=None)
    #: The distance form, if the metric has one: how ``arccos(value)`` is an angle between the
    #: members (see :func:`alignlib.metrics.distance`); "" = none.
    distance: str = ""
    #: Held-out score ``heldout(a, b, train, test, options) -> 0-d tensor`` for fitted metrics:
    #: fit the alignment map on the probes ``train``, score it on ``test``
    #: (see :func:`alignlib.metrics.cross_validated`); None = not a fitted metric.
    heldout: Callable | None = field(repr=False, compare=False, default=None)

    def __post_init__(self):
        unknown = (self.invariances | self.joint_invariances) - TRANSFORMATIONS
        if unknown:
            raise ValueError(f"unknown transformation(s) {sorted(unknown)}")
        if not self.joint_invariances <= self.invariances:
            raise ValueError("joint_invariances must be a subset of invariances")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


_METRICS: dict[str, MetricInfo] = {}

#: name -> :class:`MetricInfo`, read-only, in a fixed order.
METRICS: Mapping[str, MetricInfo] = MappingProxyType(_METRICS)


def register(info: MetricInfo) -> MetricInfo:
    if info.name in _METRICS:
        raise ValueError(f"metric {info.name!r} registered twice")
    if info.name not in METRIC_NAMES:  # one source of the names: alignlib.names
        raise ValueError(f"metric {info.name!r} is not listed in alignlib.names")
    _METRICS[info.name] = info
    return info


def metric_names() -> tuple[str, ...]:
    """The registered metric names, in registry order."""
    return tuple(_METRICS)


def get_metric(name) -> MetricInfo:
    try:
        return _METRICS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(_METRICS)}") from None


def resolve_options(info: MetricInfo, options: Mapping[str, object]) -> dict:
    """The metric's default options updated with ``options``; TypeError for unknown keys."""
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        valid = ", ".join(info.options) if info.options else "none"
        raise TypeError(f"{info.name}: unknown option(s) {unknown}; valid options: {valid}")
    return {**info.options, **options}


#: Plain words for the transformations, in the order :func:`describe` lists them.
TRANSFORMATION_WORDS = {
    "translation": "translation (X + 1 c^T)",
    "isotropic_scaling": "isotropic scaling (a X, a > 0)",
    "permutation": "unit permutations (X P)",
    "orthogonal": "orthogonal maps (X Q)",
    "invertible_linear": "invertible linear maps (X M)",
}
_NBSP = "\xa0"   # keeps a parenthesis on one line while wrapping


def _bound(x: float) -> str:
    return ("-inf" if x < 0 else "inf") if math.isinf(x) else f"{x:g}"


def describe(metric) -> str:
    """A readable summary of a metric from its :class:`MetricInfo`: what it computes, its range,
    symmetry, input, invariances, preconditions, options, distance form, held-out form and reference.

    ``metric``: a name (see :func:`metric_names`) or a :class:`MetricInfo`. Returns the text;
    ``print(alignlib.describe("cka_linear"))`` shows it.
    """
    info = metric if isinstance(metric, MetricInfo) else get_metric(metric)
    width, indent = 96, " " * 17

    def field_(label: str, text: str) -> str:
        return textwrap.fill(text, width, initial_indent=f"  {label:<15}",
                             subsequent_indent=indent).replace(_NBSP, " ")

    def words(names) -> str:
        return ", ".join(TRANSFORMATION_WORDS[t].replace(" (", "\0").replace(" ", _NBSP).replace("\0", " (")
                         for t in TRANSFORMATION_WORDS if t in names) or "none"

    separate = info.invariances - info.joint_invariances
    lines = [f"{info.name}: {METRIC_LABELS.get(info.name, info.name)}",
             textwrap.fill(info.description, width),
             field_("range", f"[{_bound(info.range[0])}, {_bound(info.range[1])}]; larger = more aligned, "
                             f"identical members give 1"),
             field_("symmetric", "yes" if info.symmetric else "no (row i of pairwise is the first argument)"),
             field_("input", "activations: each member (n probes, d units), widths may differ"
                    if info.needs == "activations" else
                    "end-to-end maps: each member a whole map (e.g. a (d_in, d_out) weight product), "
                    "compared flattened"),
             field_("invariant to", words(separate) + (" -- of either member" if separate else ""))]
    if info.joint_invariances:
        lines.append(field_("jointly only", words(info.joint_invariances)
                            + " -- only when applied to both members"))
    lines.append(field_("not invariant", words(TRANSFORMATIONS - info.invariances)))
    if info.preconditions:
        lines.append(field_("preconditions", info.preconditions))
    opts = ", ".join(f"{k}={v!r}" for k, v in info.options.items()) or "none"
    lines.append(field_("options", f"{opts} (defaults; pass as compare(a, b, {info.name!r}, key=value))"
                        if info.options else opts))
    lines.append(field_("distance", f"distance(a, b, {info.name!r}): {info.distance}" if info.distance
                        else "none (no angular form)"))
    lines.append(field_("held-out form", f"cross_validated(a, b, {info.name!r}): fit the map on some "
                                         f"probes, score it on the rest" if info.heldout is not None
                        else "none (nothing is fitted)"))
    lines.append(field_("reference", info.reference or "(none given)"))
    return "\n".join(lines)
