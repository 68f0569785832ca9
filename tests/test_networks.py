"""alignlib.ensembles.networks: batched forward passes against plain per-member torch, layer records,
the end-to-end map."""
import numpy as np
import pytest
import torch

from alignlib.ensembles.networks import Architecture, end_to_end, forward, init_member, stack_members


def _reference_cnn(params, x, image_shape):
    """One member's CNN written with plain (ungrouped) torch ops, for comparison."""
    (w1, b1, w2, b2, w3, b3) = params
    h = x.reshape(-1, *image_shape)
    conv = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(h, w1, b1, padding=1)), 2)
    hidden = torch.relu(conv.flatten(1) @ w2.T + b2)
    return [conv.flatten(1), hidden, hidden @ w3.T + b3]


def test_grouped_cnn_equals_per_member_cnn():
    arch = Architecture((3 * 4 * 4, 5, 4), activation="relu", bias=True, conv=(3,), image_shape=(2, 8, 8),
                        conv_record="flatten")
    assert arch.layer_names == ["conv1", "hidden", "output"] and arch.layer_widths == [48, 5, 4]
    rng = np.random.default_rng(0)
    members = [init_member(arch, 1.0, rng) for _ in range(3)]
    for m in members:  # non-zero biases so they are tested too
        m[1] += rng.standard_normal(m[1].shape)
        m[3] += rng.standard_normal(m[3].shape)
    params = stack_members(members, torch.float64, "cpu")
    x = torch.tensor(rng.standard_normal((7, 128)))
    outs = forward(arch, params, x)
    for i, m in enumerate(members):
        ref = _reference_cnn([torch.tensor(p) for p in m], x, (2, 8, 8))
        for got, want in zip(outs, ref):
            torch.testing.assert_close(got[i], want, rtol=1e-10, atol=1e-10)
    pooled = forward(Architecture(arch.widths, "relu", True, (3,), (2, 8, 8)), params, x)[0]
    assert pooled.shape == (3, 7, 3)  # channel_mean: one unit per channel, the mean over positions
    torch.testing.assert_close(pooled, outs[0].reshape(3, 7, 3, 16).mean(-1))
    # per-member inputs (input noise) give the same as shared inputs when they are equal
    per_member = forward(arch, params, x.expand(3, -1, -1))
    for got, want in zip(per_member, outs):
        torch.testing.assert_close(got, want)




def test_dense_layers_record_post_or_pre_activation_and_end_to_end_is_the_product():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.standard_normal((5, 3)))
    tanh = Architecture((3, 4, 2), activation="tanh")
    members = [init_member(tanh, 1.0, rng) for _ in range(2)]
    params = stack_members(members, torch.float64, "cpu")
    post, out = forward(tanh, params, x)
    pre = forward(Architecture((3, 4, 2), activation="tanh", record="pre"), params, x)[0]
    for b, (w1, w2) in enumerate(members):
        z = x.numpy() @ w1.T
        np.testing.assert_allclose(pre[b].numpy(), z, rtol=0, atol=1e-14)
        np.testing.assert_allclose(post[b].numpy(), np.tanh(z), rtol=0, atol=1e-14)
        np.testing.assert_allclose(out[b].numpy(), np.tanh(z) @ w2.T, rtol=0, atol=1e-14)
    linear = Architecture((3, 4, 2))
    assert linear.is_linear and linear.layer_names == ["hidden", "output"]
    np.testing.assert_allclose(end_to_end(linear, params)[1].numpy(), members[1][1] @ members[1][0], rtol=1e-14)
    with pytest.raises(ValueError, match="linear networks without biases"):
        end_to_end(tanh, params)


def test_init_scale_sets_the_weight_spread_and_biases_start_at_zero():
    arch = Architecture((400, 300, 1), activation="relu", bias=True)
    w1, b1, w2, b2 = init_member(arch, 2.0, np.random.default_rng(0))
    assert w1.std() == pytest.approx(2.0 / np.sqrt(400), rel=0.01)
    assert not b1.any() and not b2.any() and w2.shape == (1, 300)
    assert Architecture((3, 5, 5, 1), activation="relu").layer_names == ["hidden1", "hidden2", "output"]


@pytest.mark.parametrize("kwargs,words", [
    (dict(widths=(3,)), "at least an input and an output"),
    (dict(widths=(3, 1), activation="gelu"), "unknown activation 'gelu'"),
    (dict(widths=(3, 1), conv=(2,)), "image shape"),
    (dict(widths=(3, 1), record="mid"), "record must be 'post' or 'pre'"),
    (dict(widths=(3, 1), conv_record="max"), "conv_record must be"),
])
def test_bad_architectures_name_the_field(kwargs, words):
    with pytest.raises(ValueError, match=words):
        Architecture(**kwargs)
