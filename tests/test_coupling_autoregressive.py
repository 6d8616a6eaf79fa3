"""Tests specific to the coupling (NICE, RealNVP) and autoregressive (MADE, MAF, IAF) layers.

The generic battery (round trip, ladj, inverse ladj, batches, triangular Jacobians,
float32, shape errors) runs over every variant in tests/registry.py, from
tests/test_layers.py. Here: masks, MADE's connectivity, the cost asymmetry, the
formulas, the scale bound, the random start, and the errors for bad arguments.
Parameters are perturbed first (registry's ``build`` and ``perturb``), so that the
layers are far from the identity, where sign bugs would hide.
"""

from __future__ import annotations

import math

import pytest
import torch
from registry import CASE, FLOWS, HIDDEN, build, cases_of, perturb
from torch import nn

from nfcourse import (
    IAF,
    MADE,
    MAF,
    AdditiveCoupling,
    AffineCoupling,
    MaskedLinear,
    alternating_mask,
    half_mask,
    mlp,
    testing,
)
from nfcourse.layers.elementwise import SCALE_BOUND, shift_log_scale

F64 = torch.float64


@pytest.fixture(autouse=True)
def fixed_seed():
    """Layers built here start from torch's global random state: the same in every test."""
    torch.manual_seed(0)


def points(*shape: int, seed: int = 1, dtype=F64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize(("case", "dim"), cases_of(AdditiveCoupling, AffineCoupling, MAF, IAF))
def test_new_layers_start_random_not_at_the_identity(case, dim):
    """The default start is random (why: docs/benchmarks.md, "What made the difference")."""
    layer = case.make(dim).double()
    z = points(3, 2, dim)
    for step in (layer, layer.inverse):
        out, ladj = step(z)
        moved = (out - z).abs().max()
        assert 1e-3 < moved < 3, f"a new layer moves points by {moved}"
        if not isinstance(layer, AdditiveCoupling):
            assert ladj.abs().max() > 1e-4
    x, _ = layer(z)
    assert torch.allclose(layer.inverse(x)[0], z, atol=1e-12)


# --- coupling -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (torch.ones(2, 2), r"1-D tensor of shape \(D,\).*got shape \(2, 2\)"),
        (torch.tensor([1, 2, 0]), r"only 0 and 1.*got values \[0, 1, 2\]"),
        (torch.tensor([0.0, 0.5]), r"only 0 and 1"),
        (torch.ones(3), r"at least one 1 and at least one 0.*no 0"),
        (torch.zeros(3, dtype=torch.bool), r"at least one 1 and at least one 0.*no 1"),
        (torch.ones(1), r"needs D >= 2"),
    ],
)
@pytest.mark.parametrize("cls", [AdditiveCoupling, AffineCoupling])
def test_bad_mask_is_a_clear_error(cls, mask, match):
    with pytest.raises(ValueError, match=f"{cls.__name__}: `mask` must.*" + match):
        cls(mask)


def test_mask_helpers():
    assert alternating_mask(5).tolist() == [True, False, True, False, True]
    assert alternating_mask(5, 1).tolist() == [False, True, False, True, False]
    assert half_mask(5).tolist() == [True, True, False, False, False]
    assert half_mask(5, 1).tolist() == [False, False, True, True, True]
    assert half_mask(2).tolist() == [True, False]
    with pytest.raises(ValueError, match=r"alternating_mask: `dim` must be an integer >= 2"):
        alternating_mask(1)
    with pytest.raises(ValueError, match=r"half_mask: `parity` must be 0 or 1"):
        half_mask(4, 2)
    # a 0/1 list works as well as a bool tensor
    assert AffineCoupling([0, 1, 1]).mask.tolist() == [False, True, True]


@pytest.mark.parametrize("cls", [AdditiveCoupling, AffineCoupling])
@pytest.mark.parametrize("mask", [alternating_mask(2, 1), alternating_mask(5), half_mask(5, 1)])
def test_coupling_passes_masked_in_coordinates(cls, mask):
    layer = perturb(cls(mask, HIDDEN))
    z = points(2, 7, len(mask))
    for step in (layer, layer.inverse):
        out, _ = step(z)
        assert torch.equal(out[..., mask], z[..., mask])  # mask 1: unchanged
        assert ((out[..., ~mask] - z[..., ~mask]).abs() > 1e-6).all()  # mask 0: transformed
    # the transformed block of the Jacobian is diagonal: x_b depends on z_b elementwise
    jac = testing.autograd_jacobian(lambda p: layer(p)[0], z[0])
    block = jac[:, ~mask][:, :, ~mask]
    assert torch.equal(block, torch.diag_embed(block.diagonal(dim1=-2, dim2=-1)))
    assert torch.equal(jac[:, mask], torch.eye(len(mask), dtype=F64)[mask].expand(7, -1, -1))


@pytest.mark.parametrize("dim", [2, 5])
def test_additive_coupling_preserves_volume(dim):
    layer = build(CASE["AdditiveCoupling-parity0"], dim)
    z = points(4, dim)
    for step in (layer, layer.inverse):
        assert torch.equal(step(z)[1], torch.zeros(4, dtype=F64))  # exactly, not just about


def test_custom_net_is_used_as_given():
    # (the battery checks such a layer: registry case "AffineCoupling-net")
    mask = alternating_mask(5)  # 3 coordinates pass through, 2 are transformed
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4))
    layer = AffineCoupling(mask, net=net)
    assert layer.net is net and len(list(layer.parameters())) == len(list(net.parameters()))


@pytest.mark.parametrize(
    ("cls", "net", "error", "match"),
    [
        (AffineCoupling, nn.Linear(1, 1), ValueError, r"must map \(\.\.\., 1\) to \(\.\.\., 2\)"),
        (AdditiveCoupling, nn.Linear(1, 2), ValueError, r"must map \(\.\.\., 1\) to \(\.\.\., 1\)"),
        (AffineCoupling, nn.Linear(2, 2), ValueError, r"first Linear layer has in_features=2"),
        (AffineCoupling, lambda t: t, TypeError, r"must be a torch.nn.Module built once"),
    ],
)
def test_wrong_net_is_a_clear_error(cls, net, error, match):
    with pytest.raises(error, match=match):
        layer = cls(alternating_mask(2), net=net)
        layer(torch.zeros(3, 2))
        layer.inverse(torch.zeros(3, 2))


@pytest.mark.parametrize("raw", [1e4, -1e4, 1e30, -1e30])
def test_affine_coupling_scale_bound_holds_for_extreme_outputs(raw):
    mask = alternating_mask(5)  # 2 transformed coordinates
    layer = AffineCoupling(mask, hidden=(8,)).double()
    with torch.no_grad():
        layer.net[-1].bias.fill_(raw)  # shift and raw log-scale both `raw`
    z = points(100, 5)
    x, ladj = layer(z)
    # the shift is not bounded (it cannot overflow anything by itself); the log-scale is
    assert torch.isfinite(ladj).all()
    assert torch.allclose(ladj.abs(), torch.full_like(ladj, 2 * SCALE_BOUND))
    if abs(raw) < 1e10:
        assert torch.isfinite(x).all()
        z_back, ladj_back = layer.inverse(x)
        assert torch.isfinite(z_back).all() and torch.isfinite(ladj_back).all()
        assert torch.allclose(z_back, z, atol=1e-6)
    # a custom bound is honoured, also where the raw log-scale goes past it
    small = perturb(AffineCoupling(mask, hidden=(8,), scale_bound=0.5), scale=3.0)
    assert small.net(z[..., mask]).chunk(2, dim=-1)[1].abs().max() > 2.0
    assert small(z)[1].abs().max() <= 2 * 0.5


@pytest.mark.parametrize("bound", [0, -1.0, math.inf, "3", True])
@pytest.mark.parametrize(
    "make", [lambda b: AffineCoupling([1, 0], scale_bound=b), lambda b: MAF(2, scale_bound=b)]
)
def test_bad_scale_bound_is_a_clear_error(make, bound):
    with pytest.raises(ValueError, match=r"`scale_bound` must be a positive finite number"):
        make(bound)


def test_mlp():
    net = mlp(3, 4, hidden=(5, 6))
    assert [m.out_features for m in net if isinstance(m, nn.Linear)] == [5, 6, 4]
    assert not isinstance(net[-1], nn.ReLU)
    assert net(torch.randn(2, 3)).abs().min() > 0  # random start, no zeroed last layer
    with pytest.raises(ValueError, match=r"`hidden` must be a tuple of positive ints"):
        mlp(3, 4, hidden=64)


# --- MADE ---------------------------------------------------------------------------------------

ORDERS = [
    pytest.param(1, None, id="D1"),
    pytest.param(2, None, id="D2"),
    pytest.param(2, torch.tensor([2, 1]), id="D2-reversed"),
    pytest.param(5, None, id="D5"),
    pytest.param(
        5, torch.randperm(5, generator=torch.Generator().manual_seed(3)) + 1, id="D5-random"
    ),
]


def allowed(order: torch.Tensor, params: int) -> torch.Tensor:
    """Which inputs each output may see: ``deg_out[i] > deg_in[j]``, shape ``(params * D, D)``."""
    return order.repeat(params)[:, None] > order[None, :]


@pytest.mark.parametrize(("dim", "order"), ORDERS)
def test_made_masks_are_autoregressive(dim, order):
    made = MADE(dim, hidden=(8, 8), params=3, order=order)
    order = made.order
    assert [tuple(m.shape) for m in made.masks] == [(8, dim), (8, 8), (3 * dim, 8)]
    # exactly the allowed connections: none forbidden, and (hidden >= D - 1) none missing
    assert torch.equal(made.connectivity > 0, allowed(order, 3))
    # strictly lower-triangular once rows and columns are sorted by degree
    rank = order.argsort()
    for block in made.connectivity.reshape(3, dim, dim):
        assert torch.equal(block[rank][:, rank], block[rank][:, rank].tril(-1))


@pytest.mark.parametrize(("dim", "order"), ORDERS)
def test_made_jacobian_is_autoregressive(dim, order):
    # scale 1.5: far enough from the start that no allowed path is a dead ReLU on all 5 points
    made = perturb(MADE(dim, hidden=(32, 32), params=2, order=order), scale=1.5)
    x = points(5, dim)
    jac = testing.autograd_jacobian(made, x)  # (N, 2 D, D)
    assert jac.shape == (5, 2 * dim, dim)
    may = allowed(made.order, 2)
    assert (jac[:, ~may] == 0).all()  # no output depends on an input of degree >= its own
    assert (jac.abs().amax(0)[may] > 0).all()  # and every allowed dependence is used
    for block in jac.reshape(5, 2, dim, dim).unbind(1):  # shift block, log-scale block
        assert testing.is_triangular(block)
        assert (block.diagonal(dim1=-2, dim2=-1) == 0).all()


def test_made_output_blocks_and_batch_shape():
    made = perturb(MADE(4, hidden=(8,), params=3))
    x = points(2, 3, 4)
    out = made(x)
    assert out.shape == (2, 3, 12)
    assert torch.allclose(out[1, 2], made(x[1, 2]))
    # block k, entry i belongs to coordinate i: it ignores x_i and everything after it
    x2 = x.clone()
    x2[..., 2:] += 1.0
    a, b = made(x).chunk(3, dim=-1), made(x2).chunk(3, dim=-1)
    for ka, kb in zip(a, b, strict=True):
        assert torch.equal(ka[..., :3], kb[..., :3]) and not torch.equal(ka[..., 3], kb[..., 3])


def test_made_d1_outputs_are_constants():
    made = perturb(MADE(1, hidden=(4, 4), params=2))
    out = made(points(6, 1))
    assert torch.equal(out, out[:1].expand(6, 2))
    assert not made.masks[0].any()  # the hidden units see no input


def test_made_masks_follow_dtype_and_cut_gradients():
    made = perturb(MADE(3, hidden=(8,)))
    assert all(m.dtype == F64 for m in made.masks)
    made(points(4, 3)).sum().backward()
    for layer in made.net:
        if isinstance(layer, MaskedLinear):
            assert (layer.weight.grad[layer.mask == 0] == 0).all()
    assert [d.tolist() for d in made.degrees] == [[1, 2, 3], [1, 2] * 4, [1, 2, 3] * 2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim": 3, "order": torch.tensor([0, 1, 2])}, r"`order` must be a permutation of 1\.\.3"),
        ({"dim": 3, "order": torch.tensor([1, 2])}, r"`order` must be a permutation of 1\.\.3"),
        ({"dim": 0}, r"`dim` must be a positive integer"),
        ({"dim": 3, "params": 0}, r"`params` must be a positive int"),
        ({"dim": 3, "hidden": 64}, r"`hidden` must be a tuple of positive ints"),
    ],
)
def test_made_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MADE(**kwargs)


# --- MAF and IAF ------------------------------------------------------------------------------


def count_made_calls(layer, step, z) -> int:
    made = layer.made if isinstance(layer, MAF) else layer.layer.made
    calls = []
    handle = made.register_forward_hook(lambda *_: calls.append(1))
    step(z)
    handle.remove()
    return len(calls)


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_cost_asymmetry_maf_density_iaf_sampling(dim):
    z = points(3, dim)
    maf, iaf = build(CASE["MAF"], dim), build(CASE["IAF"], dim)
    assert count_made_calls(maf, maf.inverse, z) == 1  # MAF density: one pass
    assert count_made_calls(maf, maf, z) == dim  # MAF sampling: D passes
    assert count_made_calls(iaf, iaf, z) == 1  # IAF sampling: one pass
    assert count_made_calls(iaf, iaf.inverse, z) == dim  # IAF density: D passes


def test_maf_inverse_is_the_formula():
    """The network's output read in the normalizing direction: z = x exp(r) + q."""
    maf = build(CASE["MAF-order"], 3)
    assert maf.made.order.tolist() == [2, 3, 1]
    x = points(4, 3)
    q, raw = maf.made(x).chunk(2, dim=-1)
    r = SCALE_BOUND * torch.tanh(raw / SCALE_BOUND)
    z, ladj = maf.inverse(x)
    assert torch.allclose(z, x * torch.exp(r) + q)
    assert torch.allclose(ladj, r.sum(-1))
    # the same map in the generative notation x = z exp(s) + m of shift_log_scale
    m, s = shift_log_scale(maf.made(x), SCALE_BOUND)
    assert torch.allclose(x, z * torch.exp(s) + m)
    assert torch.allclose(ladj, -s.sum(-1))


def test_affine_coupling_is_the_formula():
    layer = build(CASE["AffineCoupling-alternating"], 4)
    mask = layer.mask
    z = points(5, 4)
    h = layer.net(z[..., mask])
    x, ladj = layer(z)
    assert torch.equal(x[..., mask], z[..., mask])
    t, s = shift_log_scale(h, SCALE_BOUND)  # x_b = z_b exp(s) + t
    assert torch.allclose(x[..., ~mask], z[..., ~mask] * s.exp() + t)
    assert torch.allclose(ladj, s.sum(-1))
    q, raw = h.chunk(2, dim=-1)  # the paper's form, data to noise: z_b = x_b exp(r) + q
    r = SCALE_BOUND * torch.tanh(raw / SCALE_BOUND)
    assert torch.allclose(z[..., ~mask], x[..., ~mask] * r.exp() + q)


def test_iaf_is_the_inverse_of_a_maf():
    maf = perturb(MAF(5, HIDDEN, order=torch.tensor([4, 2, 5, 1, 3])))
    iaf = IAF(5, HIDDEN, order=torch.tensor([4, 2, 5, 1, 3])).double()
    iaf.layer.load_state_dict(maf.state_dict())
    z = points(6, 5)
    for a, b in [(iaf(z), maf.inverse(z)), (iaf.inverse(z), maf(z))]:
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # the IAF form: x_i = z_i * scale_i(z_<i) + shift_i(z_<i), parameters from the input z
    shift, raw = maf.made(z).chunk(2, dim=-1)
    scale = torch.exp(SCALE_BOUND * torch.tanh(raw / SCALE_BOUND))
    assert torch.allclose(iaf(z)[0], z * scale + shift)


def test_maf_extreme_outputs_stay_finite():
    maf = MAF(3, hidden=(8,)).double()
    with torch.no_grad():
        maf.made.net[-1].bias.fill_(1e6)
    z = points(50, 3)
    x, ladj = maf(z)
    assert torch.isfinite(x).all()
    assert torch.allclose(ladj.abs(), torch.full_like(ladj, 3 * SCALE_BOUND))  # clamped


# --- in a flow ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nice", "realnvp", "maf", "iaf"])
def test_flow_log_prob_finite_on_grid(name):
    flow = perturb(FLOWS[name](2))
    grid = torch.stack(
        torch.meshgrid(*[torch.linspace(-6, 6, 41, dtype=F64)] * 2, indexing="ij"), dim=-1
    )
    log_p = flow.log_prob(grid)
    assert log_p.shape == (41, 41)
    assert torch.isfinite(log_p).all()
    # forward and inverse paths agree on the density of the flow's own samples
    torch.manual_seed(0)
    x, log_q = flow.sample_and_log_prob(16)
    assert torch.allclose(flow.log_prob(x), log_q, atol=1e-10)
