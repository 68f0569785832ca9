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
    """A batched network: optional 3x3 convolutions, then dense layers.

    ``widths`` are the dense widths from the (flattened) input to the output. With
    ``conv`` channels, the input is an image of ``image_shape`` (C, H, W); each
    convolution (padding 1) is followed by the activation and 2x2 max-pooling, and
    ``widths[0]`` must be the flattened size after the last pooling.
    """

    widths: tuple[int, ...]
    activation: str = "linear"
    bias: bool = False
    conv: tuple[int, ...] = ()
    image_shape: tuple[int, ...] | None = None
    record: str = "post"
    conv_record: str = "channel_mean"

    def __post_init__(self):
        if len(self.widths) < 2:
            raise ValueError("an architecture needs at least an input and an output width")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; known: {sorted(ACTIVATIONS)}")
        if self.conv and (self.image_shape is None or len(self.image_shape) != 3):
            raise ValueError("a convolutional network needs the image shape (C, H, W) of its inputs")
        if self.record not in ("post", "pre"):
            raise ValueError(f"record must be 'post' or 'pre', not {self.record!r}")
        if self.conv_record not in ("channel_mean", "flatten"):
            raise ValueError(f"conv_record must be 'channel_mean' or 'flatten', not {self.conv_record!r}")

    @property
    def is_linear(self) -> bool:
        return self.activation == "linear" and not self.bias and not self.conv

    @property
    def conv_shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) after each convolution block."""
        shapes, (_, h, w) = [], self.image_shape or (0, 0, 0)
        for channels in self.conv:
            h, w = h // 2, w // 2
            shapes.append((channels, h, w))
        return shapes

    @property
    def layer_names(self) -> list[str]:
        """'conv1', ..., 'hidden1', 'hidden2', ..., 'output' ('hidden' when there is only one)."""
        convs = [f"conv{i + 1}" for i in range(len(self.conv))]
        n_hidden = len(self.widths) - 2
        hidden = ["hidden"] if n_hidden == 1 else [f"hidden{i + 1}" for i in range(n_hidden)]
        return convs + hidden + ["output"]

    @property
    def layer_widths(self) -> list[int]:
        """Recorded units per layer: a conv layer's channels (channel_mean) or all its C*H*W values."""
        if self.conv_record == "channel_mean":
            conv = [c for c, _, _ in self.conv_shapes]
        else:
            conv = [c * h * w for c, h, w in self.conv_shapes]
        return conv + list(self.widths[1:])


def init_member(arch: Architecture, init_scale: float, rng: np.random.Generator) -> list[np.ndarray]:
    """One member's parameters: W ~ N(0, (init_scale / sqrt(fan_in))^2), biases 0."""
    params = []
    c_in = arch.image_shape[0] if arch.conv else 0
    for c_out in arch.conv:
        params.append(rng.standard_normal((c_out, c_in, 3, 3)) * (init_scale / np.sqrt(9 * c_in)))
        if arch.bias:
            params.append(np.zeros(c_out))
        c_in = c_out
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


def _conv_blocks(arch, layers, x, act, outputs):
    """Grouped convolutions: member b's filters see only member b's copy of the images."""
    n_members = layers[0][0].shape[0]
    c, hgt, wid = arch.image_shape
    if x.dim() == 2:  # shared inputs (n, C*H*W)
        h = x.reshape(x.shape[0], 1, c, hgt, wid).expand(-1, n_members, -1, -1, -1)
    else:  # per-member inputs (B, n, C*H*W)
        h = x.reshape(n_members, x.shape[1], c, hgt, wid).transpose(0, 1)
    h = h.reshape(h.shape[0], n_members * c, hgt, wid)
    for w, b in layers[: len(arch.conv)]:
        z = torch.nn.functional.conv2d(h, w.reshape(-1, *w.shape[2:]), padding=1, groups=n_members)
        if b is not None:
            z = z + b.reshape(1, -1, 1, 1)
        h = torch.nn.functional.max_pool2d(act(z), 2)
        record = torch.nn.functional.max_pool2d(z, 2) if arch.record == "pre" else h
        n = h.shape[0]
        record = record.reshape(n, n_members, record.shape[1] // n_members, -1)
        record = record.mean(-1) if arch.conv_record == "channel_mean" else record.flatten(2)
        outputs.append(record.transpose(0, 1))
    return h.reshape(h.shape[0], n_members, -1).transpose(0, 1)


def forward(arch: Architecture, params: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's output for inputs x of shape (n, d) (shared) or (B, n, d).

    Hidden layers are returned after the activation (before it with record='pre');
    the last entry is the output. Each has shape (B, n, width).
    """
    act = ACTIVATIONS[arch.activation]
    outputs = []
    layers = list(split_layers(arch, params))
    h = _conv_blocks(arch, layers, x, act, outputs) if arch.conv else x
    dense = layers[len(arch.conv):]
    for i, (w, b) in enumerate(dense):
        z = torch.matmul(h, w.transpose(-1, -2))
        if b is not None:
            z = z + b[:, None, :]
        if i < len(dense) - 1:
            h = act(z)
            outputs.append(z if arch.record == "pre" else h)
        else:
            outputs.append(z)
    return outputs


def end_to_end(arch: Architecture, params: list[torch.Tensor]) -> torch.Tensor:
    """The end-to-end matrix W_L ... W_1 of a linear network, shape (B, out, d)."""
    if not arch.is_linear:
        raise ValueError("the end-to-end map is defined for linear networks without biases only")
    beta = params[0]
    for w in params[1:]:
        beta = torch.matmul(w, beta)
    return beta
