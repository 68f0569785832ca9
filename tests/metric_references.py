"""Representations for the metric tests: anisotropic members, related members of several widths,
invertible maps."""
import numpy as np
from scipy.stats import ortho_group

SPECTRUM = np.array([3.0, 2.0, 1.0, 0.3, 0.05, 0.02])


def rng_(seed=0):
    return np.random.default_rng(seed)


def member(seed=0, n=60, d=6):
    rng = rng_(seed)
    return (rng.normal(size=(n, d)) * SPECTRUM[:d]) @ ortho_group.rvs(d, random_state=seed + 1) + rng.normal(size=d)


def related(seed=0, n=60, widths=(6, 6, 4, 7), noise=0.5):
    rng = rng_(seed)
    z = rng.normal(size=(n, 3))
    return [np.tanh(z @ rng.normal(size=(3, w))) + noise * rng.normal(size=(n, w)) + rng.normal(size=w)
            for w in widths]


def invertible(d, seed):
    return ortho_group.rvs(d, random_state=seed) @ np.diag(np.logspace(-1, 1, d)) @ ortho_group.rvs(
        d, random_state=seed + 7)
