"""Noise processes: each member's own corruption of the shared training set.

SNR definitions (recorded in the cube attributes):
- target_gaussian: targets + N(0, sigma^2), SNR = Var(clean target) / sigma^2.
"""

from __future__ import annotations

import numpy as np

from .seeding import stream

SNR_DEFINITIONS = {
    "target_gaussian": "SNR = Var(clean target) / Var(additive Gaussian target noise)",
}


def target_gaussian_noise(base_seed, task, snr, n, seed, shape, target_variance) -> np.ndarray:
    """The additive target noise of member (snr, n, seed): N(0, target_variance / snr)."""
    rng = stream(base_seed, task, "noise", float(snr), int(n), int(seed))
    return rng.standard_normal(shape) * np.sqrt(target_variance / snr)


def noisy_targets(kind, clean_y, *, base_seed, task, snr, n, seed, target_variance) -> np.ndarray:
    """The training targets member (snr, n, seed) is trained on."""
    if kind != "target_gaussian":
        raise ValueError(f"unknown noise process {kind!r}; known: {sorted(SNR_DEFINITIONS)}")
    return clean_y + target_gaussian_noise(
        base_seed, task, snr, n, seed, clean_y.shape, target_variance
    )
