"""Memory estimates checked before the metrics whose memory grows with the members' widths.

``soft_matching`` builds, per pair, a d_a x d_b correlation block and an optimal-transport
problem of d_a d_b arcs; ``linear_predictivity`` holds every target unit's predictions. At
200 probes x 20000 units the former used to abort the process (``std::bad_alloc`` inside POT);
now the metric estimates its peak first and raises :class:`MemoryError` with the estimate and
the sizes when it exceeds :func:`memory_limit`.

The limit is the memory available when the metric starts (``MemAvailable`` from
``/proc/meminfo``, else free physical pages from ``os.sysconf``, else
:data:`DEFAULT_LIMIT_BYTES`; for CUDA tensors the device's free memory), or the fixed number
of bytes set with :func:`set_memory_limit`.
"""

from __future__ import annotations

import os

import torch

#: Limit used when the available memory cannot be read (8 GiB).
DEFAULT_LIMIT_BYTES = 8 * 2 ** 30

_limit: int | None = None


def set_memory_limit(n_bytes: int | None) -> None:
    """Fix the limit the memory checks use to ``n_bytes``; None restores the default (memory
    available at each call)."""
    global _limit
    if n_bytes is not None:
        if isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or n_bytes <= 0:
            raise ValueError(f"n_bytes must be a positive integer or None, got {n_bytes!r}")
    _limit = n_bytes


def available_bytes(device: torch.device | None = None) -> int | None:
    """Free memory on ``device`` (CUDA: ``torch.cuda.mem_get_info``; CPU: ``MemAvailable``, else
    ``os.sysconf``'s free pages), or None when it cannot be read."""
    if device is not None and torch.device(device).type == "cuda":
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit(device: torch.device | None = None) -> int:
    """Bytes a metric may plan to use: the :func:`set_memory_limit` value, else the available memory
    on ``device``, else :data:`DEFAULT_LIMIT_BYTES`."""
    if _limit is not None:
        return _limit
    free = available_bytes(device)
    return DEFAULT_LIMIT_BYTES if free is None else free


def check_memory(metric: str, estimate: int, sizes: str, device: torch.device | None = None) -> None:
    """MemoryError naming the estimate and the sizes when ``estimate`` bytes exceed :func:`memory_limit`."""
    limit = memory_limit(device)
    if estimate > limit:
        raise MemoryError(
            f"{metric} would need about {estimate:,} bytes ({estimate / 2 ** 30:.1f} GiB) for {sizes}, more "
            f"than the limit of {limit:,} bytes ({limit / 2 ** 30:.1f} GiB; "
            f"{'set with set_memory_limit' if _limit is not None else 'the memory available now'}). "
            f"Compare fewer units (e.g. a random or PCA subset), or raise the limit with "
            f"alignlib.metrics.set_memory_limit(n_bytes) if the machine has the memory")
