"""Image layers: what the registry's battery (tests/test_layers.py) does not see.

The battery checks every image layer's round trip, ladj against the autograd Jacobian in
float64, batches and Jacobian structure. Here: actnorm's data-dependent initialization, the
1x1 convolution's log-det against slogdet of its weight, squeeze as a permutation with the
documented layout, masks, the preprocessing's log-det formula, the whole image flow against
autograd, and clear errors for bad arguments.
"""

from __future__ import annotations

import math

import pytest
import torch
from registry import perturb

from nfcourse import images, testing
from nfcourse.data import digits
from nfcourse.layers import image

F64 = torch.float64


def perturb_core(flow, scale=0.2):
    """The flow in float64 with every layer but the fixed preprocessing perturbed."""
    for layer in flow.transform.layers[:-1]:
        perturb(layer, scale)
    return flow.double()


def test_actnorm_initializes_once_to_zero_mean_unit_variance_per_channel():
    layer = image.ActNorm((3, 4, 4)).double()
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.5, 2.0, 7.0], dtype=F64)[:, None, None]
    x = (torch.randn(32, 3, 4, 4, generator=g, dtype=F64) * scales + 3.0).reshape(32, 48)
    z0, ladj0 = layer(x)  # forward before initialization: the identity
    assert torch.equal(z0, x) and (ladj0 == 0).all() and not layer.initialized
    z, ladj = layer.inverse(x)  # the first normalizing pass sets it
    per_channel = z.reshape(32, 3, 16).transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3, dtype=F64), atol=1e-12)
    assert torch.allclose(per_channel.std(1), torch.ones(3, dtype=F64), atol=1e-12)
    assert layer.initialized
    # the ladj counts every pixel of each channel: -H W sum_c log std_c
    assert torch.allclose(ladj, -16 * layer.log_scale.sum().expand(32))
    assert torch.allclose(layer.log_scale.exp(), scales.flatten(), rtol=0.3)
    # a later batch does not initialize again
    before = layer.log_scale.detach().clone()
    layer.inverse(10 * x)
    assert torch.equal(layer.log_scale.detach(), before)
    # the flag travels with the state dict
    fresh = image.ActNorm((3, 4, 4)).double()
    fresh.load_state_dict(layer.state_dict())
    assert fresh.initialized and torch.equal(fresh.inverse(x)[0], z)


def test_actnorm_in_a_flow_initializes_every_layer_on_its_own_input():
    torch.manual_seed(0)
    flow = images.image_flow(shape=(1, 4, 4), hidden=8, depth=(1, 1, 1))
    v = digits.dequantize(torch.randint(17, (64, 16), generator=torch.Generator().manual_seed(1)))
    flow.log_prob(v)
    actnorms = [m for m in flow.modules() if isinstance(m, image.ActNorm)]
    assert len(actnorms) == 3 and all(m.initialized for m in actnorms)


def test_conv1x1_ladj_is_hw_times_slogdet_of_its_weight():
    torch.manual_seed(0)
    layer = perturb(image.Conv1x1((3, 2, 5)))
    weight = layer.weight()
    sign, logabsdet = torch.linalg.slogdet(weight)
    z = torch.randn(4, 30, dtype=F64)
    x, ladj = layer(z)
    assert torch.allclose(ladj, torch.full((4,), 10 * logabsdet.item(), dtype=F64), atol=1e-12)
    assert torch.allclose(layer.log_s.sum(), logabsdet, atol=1e-12)
    assert sign == layer.sign.prod()  # the sign is fixed at initialization
    # the same matrix at every pixel: x[:, :, h, w] = W z[:, :, h, w]
    expected = torch.einsum("ij,bjhw->bihw", weight, z.reshape(4, 3, 2, 5)).reshape(4, 30)
    assert torch.allclose(x, expected, atol=1e-12)
    # and the full 30 x 30 Jacobian has the same log-determinant
    full = testing.autograd_ladj(lambda p: layer(p)[0], z)
    assert torch.allclose(full, ladj, atol=1e-10)


def test_conv1x1_starts_as_a_rotation():
    torch.manual_seed(0)
    layer = image.Conv1x1((4, 2, 2))
    w = layer.weight()
    assert torch.allclose(w @ w.T, torch.eye(4), atol=1e-5)
    assert layer(torch.randn(3, 16))[1].abs().max() < 1e-5
    assert (w - torch.eye(4)).abs().max() > 0.1  # mixes the channels from the start


def test_squeeze_is_the_documented_permutation():
    layer = image.Squeeze((2, 4, 6))
    assert layer.out_shape == (8, 2, 3)
    x = torch.arange(48, dtype=F64)[None]
    z, ladj = layer.inverse(x)
    img, out = x.reshape(2, 4, 6), z.reshape(8, 2, 3)
    for c in range(2):
        for i in range(2):
            for j in range(2):
                assert torch.equal(out[4 * c + 2 * i + j], img[c, i::2, j::2])
    assert torch.equal(z.sort().values, x) and (ladj == 0).all()  # every value once
    jac = testing.autograd_jacobian(lambda p: layer(p)[0], z)[0]
    assert torch.equal(jac @ jac.T, torch.eye(48, dtype=F64))  # a permutation matrix
    assert ((jac == 0) | (jac == 1)).all()


def test_masks_alternate():
    board = image.checkerboard_mask((2, 3, 4))
    assert board.shape == (2, 3, 4) and board.dtype == torch.bool
    assert torch.equal(board[0], board[1])
    assert (board[:, :, 1:] != board[:, :, :-1]).all()  # neighbours differ, across
    assert (board[:, 1:] != board[:, :-1]).all()  # and down
    assert torch.equal(image.checkerboard_mask((2, 3, 4), 1), ~board)
    channels = image.channel_mask((4, 2, 2))
    assert channels[:2].all() and not channels[2:].any()
    assert torch.equal(image.channel_mask((4, 2, 2), 1), ~channels)


def test_coupling_starts_as_the_identity_and_keeps_the_masked_entries():
    torch.manual_seed(0)
    shape = (1, 4, 4)
    mask = image.checkerboard_mask(shape)
    layer = image.ImageCoupling(shape, mask, hidden=8).double()
    z = torch.randn(5, 16, dtype=F64)
    x, ladj = layer(z)
    assert torch.equal(x, z) and (ladj == 0).all()  # the zero last convolution
    layer = perturb(layer)
    x, ladj = layer(z)
    keep = mask.flatten()
    assert torch.equal(x[:, keep], z[:, keep]) and (x[:, ~keep] != z[:, ~keep]).all()
    assert ladj.abs().min() > 0


def test_preprocessing_ladj_formula():
    levels, alpha, dim = 17, 0.05, 6
    layers = image.dequantized_to_logit(dim, levels, alpha).double()
    v = digits.dequantize(torch.randint(17, (7, dim)), dtype=F64)
    x, ladj = layers.inverse(v)
    s = alpha + (1 - 2 * alpha) * v / levels
    assert torch.allclose(x, s.log() - (1 - s).log(), atol=1e-12)
    formula = dim * math.log((1 - 2 * alpha) / levels) - (s.log() + (1 - s).log()).sum(-1)
    assert torch.allclose(ladj, formula, atol=1e-12)
    assert not any(p.requires_grad for p in layers.parameters())  # fixed, not trained


def test_image_flow_ladj_matches_autograd():
    torch.manual_seed(0)
    flow = images.image_flow(shape=(1, 4, 4), hidden=8, depth=(2, 1, 1))
    v = digits.dequantize(torch.randint(17, (6, 16), generator=torch.Generator().manual_seed(2)))
    flow.log_prob(v)  # the actnorms' initialization
    flow = perturb_core(flow)
    v = v.double()
    assert testing.round_trip_error(flow.transform, flow.transform.inverse(v)[0]) < 1e-10
    assert testing.ladj_error(flow.transform, v, "inverse") < 1e-9
    z = flow.transform.inverse(v)[0]
    assert torch.allclose(flow.log_prob(v), flow.base.log_prob(z) + flow.transform.inverse(v)[1])


def test_tabular_flow_behind_the_same_preprocessing():
    torch.manual_seed(0)
    for kind in ("maf", "nsf"):
        flow = perturb_core(images.tabular_flow(kind, dim=4, layers=2, hidden=(8,)))
        v = digits.dequantize(torch.randint(17, (5, 4)), dtype=F64)
        assert testing.ladj_error(flow.transform, v, "inverse") < 1e-9


def test_bits_is_the_mean_bound_and_training_lowers_it():
    torch.manual_seed(0)
    train = digits.load()["train"][:, :16]  # the top two rows: a 2 x 8 image
    flow = images.image_flow(shape=(1, 4, 4), hidden=8, depth=(1, 1, 1))
    losses = images.train(flow, train, steps=60, batch_size=32, lr=3e-3, seed=0)
    assert len(losses) == 60 and sum(losses[-10:]) < sum(losses[:10]) - 1.0
    bits = images.bits(flow, train[:50], draws=2, seed=1)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        by_hand = (
            sum(
                -flow.log_prob(digits.dequantize(train[:50], g)) / (16 * math.log(2))
                for _ in range(2)
            )
            / 2
        )
    assert torch.allclose(bits, by_hand.double(), atol=1e-5)


def test_sample_and_interpolate_give_grey_levels():
    torch.manual_seed(0)
    flow = images.image_flow(shape=(1, 4, 4), hidden=8, depth=(1, 1, 1))
    flow.log_prob(digits.dequantize(torch.randint(17, (32, 16))))
    for temperature in (0.5, 1.0):
        x = images.sample(flow, 9, temperature, torch.Generator().manual_seed(0))
        assert x.shape == (9, 16) and x.dtype == torch.int64 and 0 <= x.min() <= x.max() <= 16
    z = images.encode(flow, torch.randint(17, (2, 16)))
    line = images.interpolate(flow, z[0], z[1], steps=5)
    assert line.shape == (5, 16)
    assert torch.equal(line[0], images.decode(flow, z[:1])[0])


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: image.ActNorm((1, 8)), r"`shape` must be \(C, H, W\)"),
        (lambda: image.ActNorm((1, 0, 8)), r"`shape` must be \(C, H, W\)"),
        (lambda: image.Squeeze((1, 3, 4)), "multiples of factor = 2"),
        (lambda: image.channel_mask((1, 4, 4)), "at least two channels"),
        (lambda: image.checkerboard_mask((3, 1, 1)), "at least two pixels"),
        (lambda: image.checkerboard_mask((1, 4, 4), parity=2), "`parity` must be 0 or 1"),
        (
            lambda: image.ImageCoupling((1, 4, 4), image.checkerboard_mask((1, 2, 2))),
            r"the image's shape \(1, 4, 4\)",
        ),
        (
            lambda: image.ImageCoupling((2, 2, 2), torch.ones(2, 2, 2)),
            "both True .* and False",
        ),
        (lambda: image.Subset(4, [0, 4], image.Conv1x1((2, 1, 1))), "distinct ints in 0, ..., 3"),
        (lambda: image.Subset(4, [0, 0], image.Conv1x1((2, 1, 1))), "distinct ints"),
        (lambda: image.Subset(4, [0, 1, 2], image.Conv1x1((2, 1, 1))), "acts on 2 coordinates"),
        (lambda: image.dequantized_to_logit(4, alpha=0.5), r"`alpha` must lie in \(0, 0.5\)"),
        (lambda: images.image_flow(shape=(1, 6, 6)), "multiples of 4"),
        (lambda: images.image_flow(depth=(2, 2)), "`depth` must be 3 non-negative ints"),
        (lambda: images.tabular_flow("made"), "unknown kind"),
    ],
)
def test_bad_arguments_are_clear_errors(build, match):
    with pytest.raises((ValueError, TypeError, KeyError), match=match):
        build()


def test_actnorm_initialize_needs_two_values_per_channel():
    with pytest.raises(ValueError, match="at least two values per channel"):
        image.ActNorm((2, 1, 1)).initialize(torch.zeros(1, 2))


def test_montage_places_every_image_and_blanks_the_rest():
    from nfcourse.viz.images import montage

    pictures = torch.arange(5 * 64).reshape(5, 64) % 17
    grid = montage(pictures, cols=3)
    assert grid.shape == (2 * 9 - 1, 3 * 9 - 1)
    assert (grid[9:17, 9:17] == pictures[4].reshape(8, 8).numpy()).all()
    assert math.isnan(grid[8, 0]) and math.isnan(grid[9, 18])  # a gap, the empty place
    with pytest.raises(ValueError, match="empty"):
        montage(torch.zeros(0, 64), cols=3)
