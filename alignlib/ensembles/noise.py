"""Noise processes: each member's own corruption of the shared training set.

Every member (snr, n, seed) draws its noise from its own generator; probe and test
sets are never touched. SNR definitions (also written into the cube attributes):
"""

from __future__ import annotations

import numpy as np

from alignlib.seeding import stream

SNR_DEFINITIONS = {
    "target_gaussian": "SNR = Var(clean target) / sigma^2; targets (one-hot for classification) + N(0, sigma^2)",
    "label_flip": "SNR = (1 - p) / p; each training label is replaced with probability p = 1 / (1 + SNR) "
                  "by a uniformly drawn other class",
    "input_gaussian": "SNR = Var(clean input) / sigma^2; training inputs + N(0, sigma^2)",
}
__doc__ += "\n".join(f"- {k}: {v}" for k, v in SNR_DEFINITIONS.items())


def flip_probability(snr: float) -> float:
    """p such that (1 - p) / p = snr."""
    return 1.0 / (1.0 + snr)


def flip_labels(labels: np.ndarray, classes: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Replace each label with probability p by a uniformly drawn *other* class."""
    labels = np.asarray(labels)
    flip = rng.random(labels.shape) < p
    # adding 1..classes-1 modulo classes never returns the original class
    shift = rng.integers(1, classes, size=labels.shape)
    return np.where(flip, (labels + shift) % classes, labels)


def member_noise_rng(base_seed, task, snr, n, seed) -> np.random.Generator:
    return stream(base_seed, task, "noise", float(snr), int(n), int(seed))


def corrupt(kind: str, *, x: np.ndarray, targets: np.ndarray, snr: float, rng: np.random.Generator,
            target_variance: float, input_variance: float, classes: int | None = None):
    """Member's training set: returns (inputs, targets) after its own noise.

    ``targets`` are float arrays (n, out) for MSE (one-hot for classification) or integer
    labels (n,) for label_flip. Inputs are returned unchanged (the same object) unless
    the noise is on the inputs.
    """
    if snr <= 0:
        raise ValueError(f"snr must be > 0, got {snr}")
    if kind == "target_gaussian":
        return x, targets + rng.standard_normal(targets.shape) * np.sqrt(target_variance / snr)
    if kind == "label_flip":
        if classes is None or targets.ndim != 1:
            raise ValueError("label_flip needs integer class labels (a classification data set)")
        return x, flip_labels(targets, classes, flip_probability(snr), rng)
    if kind == "input_gaussian":
        return x + rng.standard_normal(x.shape) * np.sqrt(input_variance / snr), targets
    raise ValueError(f"unknown noise process {kind!r}; known: {sorted(SNR_DEFINITIONS)}")
