"""Shared helpers: input conversion, validation and small float64 torch kernels.

Everything here works on ``torch.float64`` tensors on whatever device the
caller's data lives on, so the metrics run on a GPU when given CUDA tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

DTYPE = torch.float64
Tensor = torch.Tensor

#: Relative size below which a centred representation counts as constant.
CONSTANT_RTOL = 1e-12
F64_EPS = float(torch.finfo(DTYPE).eps)
#: Fewest probes an activation metric accepts. With n = 2 every centred member is one direction
#: (+-v), so CKA = Procrustes = 1 and every neighbour set is the other probe, for any data.
MIN_PROBES = 3


# --------------------------------------------------------------------------- input


def _device_of(items: Sequence) -> torch.device:
    for item in items:
        if isinstance(item, torch.Tensor):
            return item.device
    return torch.device("cpu")


def _to_tensor(x, device: torch.device, label: str) -> Tensor:
    """One array-like as a contiguous float64 tensor on ``device`` (torch tensors are detached).

    NumPy input is made C-contiguous and writeable first (``numpy.require``): reversed views
    (negative strides), Fortran-ordered arrays and read-only arrays (``np.load(mmap_mode='r')``)
    are copied, so torch neither refuses them nor warns about them, and a strided view gives
    the same bits as a contiguous copy of the same values. A float64 C-contiguous writeable
    array is shared, not copied; nothing here writes to it.
    """
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise ValueError(f"{label} is complex; alignment metrics need real values")
        return x.detach().to(device=device, dtype=DTYPE).contiguous()
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{label} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{label} is complex; alignment metrics need real values")
    return torch.as_tensor(np.require(arr, dtype=np.float64, requirements=["C", "W"]), device=device)


def _dtype_eps(x) -> float | None:
    """Machine epsilon of one input's floating dtype; None for float64 or wider and for exact
    (integer, boolean) data."""
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            return None
        eps = torch.finfo(x.dtype).eps
    else:
        dt = getattr(x, "dtype", None)
        if dt is None:
            dt = np.asarray(x).dtype
        if not np.issubdtype(dt, np.floating):
            return None
        eps = float(np.finfo(dt).eps)
    return None if eps <= F64_EPS else float(eps)


def input_eps(reps) -> float | None:
    """The coarsest machine epsilon among the inputs' storage dtypes, or None when every input is
    float64 (or exact). ``reps`` as for :func:`split_members`.

    The metrics compute in float64, but float32 activations carry rounding of relative size
    ~6e-8 in every direction; rank decisions must not count it as signal, so they use this eps
    (e.g. the CCA family's ``rank_eps`` when left at None).
    """
    items = list(reps) if isinstance(reps, (list, tuple)) else [reps]
    eps = [e for e in map(_dtype_eps, items) if e is not None]
    return max(eps) if eps else None


def split_members(reps) -> list[Tensor]:
    """``reps`` (an (S, ...) array/tensor or a list of arrays) as a list of float64 tensors.

    All members end up on one device: that of ``reps`` if it is a tensor, else that
    of the first tensor in the list, else the CPU.
    """
    if isinstance(reps, (np.ndarray, torch.Tensor)):
        if reps.ndim < 2:
            raise ValueError(
                f"reps must be an array of shape (S, n, d) (or (S, ...) for end-to-end metrics) "
                f"or a list of arrays; got an array of shape {tuple(reps.shape)}")
        device = reps.device if isinstance(reps, torch.Tensor) else torch.device("cpu")
        stacked = _to_tensor(reps, device, "reps")
        members = list(stacked.unbind(0))
    elif isinstance(reps, (list, tuple)):
        device = _device_of(reps)
        members = [_to_tensor(x, device, f"member {i}") for i, x in enumerate(reps)]
    else:
        raise TypeError(f"reps must be a NumPy array, a torch tensor or a list of arrays, "
                        f"got {type(reps).__name__}")
    if not members:
        raise ValueError("reps is empty: need at least one member")
    for i, x in enumerate(members):
        if x.numel() == 0:
            raise ValueError(f"member {i} is empty (shape {tuple(x.shape)})")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"member {i} contains NaN or infinite values")
    return members


def as_activations(members: list[Tensor]) -> list[Tensor]:
    """Check members are (n, d_i) activation matrices with one probe count n.

    A 1-D member of length n is read as n probes of a single unit.
    """
    out = []
    for i, x in enumerate(members):
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"member {i} has shape {tuple(x.shape)}; activation metrics need "
                             f"(n probes, d units) per member, i.e. reps of shape (S, n, d)")
        out.append(x)
    counts = [x.shape[0] for x in out]
    if len(set(counts)) > 1:
        raise ValueError(f"members have different numbers of probes (rows): {counts}; "
                         f"every member must be evaluated on the same n probes")
    if counts[0] < MIN_PROBES:
        raise ValueError(
            f"need at least {MIN_PROBES} probes, got n = {counts[0]}: with 2 probes every centred member "
            f"is a single direction (+-v), so every metric is fixed by construction (CKA = Procrustes = 1 "
            f"for any data)")
    return out


def unit_scaled(x: Tensor) -> Tensor:
    """``x`` times the power of two that brings ``max|x|`` into [0.5, 1).

    Every metric is invariant to isotropic scaling of a member, so this changes no value, but it
    keeps the metrics' products (CKA's fourth powers, norms, Gram matrices) far from float64's
    overflow (~1e308) and underflow (~1e-308): members scaled by 1e+-200 give the value of the
    unscaled ones. A power of two only changes exponents, so for a member whose entries stay
    normal numbers it is exact: well-scaled input gives the same bits as without it. A zero
    member is returned as it is (the metrics reject it as constant).
    """
    m = float(x.abs().max()) if x.numel() else 0.0
    if m == 0.0:
        return x
    e = math.frexp(m)[1]                       # m = f 2^e, 0.5 <= f < 1
    if e == 0:
        return x
    half = -e // 2                             # two factors: neither over- nor underflows
    return x * math.ldexp(1.0, half) * math.ldexp(1.0, -e - half) if abs(e) > 1000 else x * math.ldexp(1.0, -e)


def as_vectors(members: list[Tensor]) -> list[Tensor]:
    """Flatten members (end-to-end maps) and check they all have the same size."""
    flat = [x.reshape(-1) for x in members]
    sizes = [x.numel() for x in flat]
    if len(set(sizes)) > 1:
        raise ValueError(f"end-to-end maps have different sizes {[tuple(x.shape) for x in members]}; "
                         f"cosine similarity needs arrays with the same number of entries")
    return flat


def require_probes(n: int, minimum: int, metric: str, why: str = "") -> None:
    if n < minimum:
        raise ValueError(f"{metric} needs at least {minimum} probes, got n = {n}" + (f" ({why})" if why else ""))


def check_k(k, n: int, metric: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"{metric}: k must be an integer, got {k!r}")  # noqa: TRY004 (a bad option value)
    k = int(k)
    if k < 1 or k >= n:
        raise ValueError(f"{metric}: k = {k} must satisfy 1 <= k < n = {n} (n = number of probes)")
    return k


def check_choice(value, choices: Sequence[str], metric: str, option: str) -> str:
    if value not in choices:
        raise ValueError(f"{metric}: {option} must be one of {list(choices)}, got {value!r}")
    return value


def check_nonnegative(value, metric: str, option: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{metric}: {option} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{metric}: {option} must be finite and >= 0, got {value!r}")
    return v


# --------------------------------------------------------------------------- kernels


def centre(x: Tensor) -> Tensor:
    """Subtract the mean over probes (rows)."""
    return x - x.mean(0, keepdim=True)


def centred_checked(x: Tensor, index: int, metric: str) -> Tensor:
    """Centred ``x``; ValueError if the representation is constant over probes."""
    xc = centre(x)
    scale = float(x.abs().max())
    if scale == 0.0 or float(xc.abs().max()) <= CONSTANT_RTOL * scale:
        raise ValueError(f"{metric}: member {index} is constant across probes (all probes have the "
                         f"same representation), so its alignment is undefined")
    return xc


def sq_distances(xc: Tensor) -> Tensor:
    """Squared Euclidean distances between rows, clamped at 0, with an exact zero diagonal."""
    sq = (xc * xc).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (xc @ xc.mT)
    d2.clamp_(min=0.0)
    d2.fill_diagonal_(0.0)
    return d2


def upper_triangle(m: Tensor) -> Tensor:
    """Entries above the diagonal, row by row."""
    n = m.shape[0]
    mask = torch.ones(n, n, dtype=torch.bool, device=m.device).triu_(1)
    return m[mask]


def median(v: Tensor) -> Tensor:
    """Median of a 1-D tensor (mean of the two middle values for an even count)."""
    s = torch.sort(v).values
    m = s.numel()
    return 0.5 * (s[(m - 1) // 2] + s[m // 2])


def average_ranks(v: Tensor) -> Tensor:
    """Ranks 1..m of a 1-D tensor, ties given their average rank (as scipy.stats.rankdata)."""
    sorted_v, order = torch.sort(v, stable=True)
    _, inverse, counts = torch.unique_consecutive(sorted_v, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(DTYPE)
    avg = ends - 0.5 * (counts.to(DTYPE) - 1.0)
    ranks = torch.empty_like(v)
    ranks[order] = avg[inverse]
    return ranks


def cosine_normalise(x: Tensor, metric: str, what: str) -> Tensor:
    """Rows of ``x`` divided by their norm.

    A zero row (e.g. a probe that no ReLU unit responds to) stays zero: by convention its
    cosine with every other row is 0, so it is nobody's near neighbour and its own
    neighbours are ordered by index. ``metric`` and ``what`` are kept for the callers' messages.
    """
    norms = x.norm(dim=1)
    return x / torch.where(norms > 0, norms, torch.ones_like(norms))[:, None]


def unit_gram(f: Tensor, pair: bool) -> Tensor:
    """Inner products of stacked unit vectors: f[0]·f[1] for a pair, else the symmetrised
    (S, S) Gram matrix with an exact unit diagonal."""
    if pair:
        return f[0] @ f[1]
    c = f @ f.mT
    c = 0.5 * (c + c.mT)
    c.fill_diagonal_(1.0)
    return c
