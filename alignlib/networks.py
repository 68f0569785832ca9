"""Batched ensembles of fully connected networks.

An ensemble of B members sharing one architecture is a list of per-layer weights
of shape (B, fan_out, fan_in) (and biases (B, fan_out)), so every member runs in
the same batched matrix products. Member i's weights are drawn from its own
generator, so they do not depend on which batch it is in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": torch.relu,
    "tanh": torch.tanh,
}


@dataclass(frozen=True)
class Architecture:
    """Layer widths from input to output, the hidden activation and whether layers have biases."""

    widths: tuple[int, ...]
    activation: str = "linear"
    bias: bool = False

    def __post_init__(self):
        if len(self.widths) < 2:
            raise ValueError("an architecture needs at least an input and an output width")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; known: {sorted(ACTIVATIONS)}")

    @property
    def is_linear(self) -> bool:
        return self.activation == "linear" and not self.bias

    @property
    def layer_names(self) -> list[str]:
        """'hidden1', 'hidden2', ..., 'output' ('hidden' when there is only one)."""
        n_hidden = len(self.widths) - 2
        if n_hidden == 1:
            hidden = ["hidden"]
        else:
            hidden = [f"hidden{i + 1}" for i in range(n_hidden)]
        return hidden + ["output"]

    @property
    def layer_widths(self) -> list[int]:
        return list(self.widths[1:])


def init_member(arch: Architecture, init_scale: float, rng: np.random.Generator) -> list[np.ndarray]:
    """One member's parameters: W ~ N(0, (init_scale / sqrt(fan_in))^2), biases 0."""
    params = []
    for fan_in, fan_out in zip(arch.widths[:-1], arch.widths[1:]):
        params.append(rng.standard_normal((fan_out, fan_in)) * (init_scale / np.sqrt(fan_in)))
        if arch.bias:
            params.append(np.zeros(fan_out))
    return params


def stack_members(members: list[list[np.ndarray]], dtype, device) -> list[torch.Tensor]:
    """Stack per-member parameter lists into batched tensors (leading member axis)."""
    return [
        torch.as_tensor(np.stack([m[i] for m in members]), dtype=dtype, device=device)
        for i in range(len(members[0]))
    ]


def split_layers(arch: Architecture, params: list[torch.Tensor]):
    """Yield (weight, bias-or-None) per layer."""
    step = 2 if arch.bias else 1
    for i in range(0, len(params), step):
        yield params[i], (params[i + 1] if arch.bias else None)


def forward(arch: Architecture, params: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's output for inputs x of shape (n, d) (shared) or (B, n, d).

    Hidden layers are returned after the activation; the last entry is the output.
    """
    act = ACTIVATIONS[arch.activation]
    outputs = []
    h = x
    layers = list(split_layers(arch, params))
    for i, (w, b) in enumerate(layers):
        h = torch.matmul(h, w.transpose(-1, -2))
        if b is not None:
            h = h + b[:, None, :]
        if i < len(layers) - 1:
            h = act(h)
        outputs.append(h)
    return outputs


def end_to_end(arch: Architecture, params: list[torch.Tensor]) -> torch.Tensor:
    """The end-to-end matrix W_L ... W_1 of a linear network, shape (B, out, d)."""
    if not arch.is_linear:
        raise ValueError("the end-to-end map is defined for linear networks without biases only")
    beta = params[0]
    for w in params[1:]:
        beta = torch.matmul(w, beta)
    return beta
