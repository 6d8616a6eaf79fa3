"""Wrong inputs a learner makes get a clear answer, over every layer and flow of the course.

Each test plants one kind of bad input and asserts the error names the argument, what
came, what was expected and what to do (or, for dtypes, that the one chosen behaviour
holds: points are converted to the model's dtype).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributions as D
from registry import FLOWS, LAYERS
from torch import nn

import nfcourse as nf

F32, F64 = torch.float32, torch.float64
SIZED = [c for c in LAYERS if c.make(3).dim is not None]  # layers with parameters or a size


def _points(case, dim: int, dtype=F64, n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if case.domain == "unit":
        return (torch.rand(n, dim, generator=g, dtype=F64) * 0.98 + 0.01).to(dtype)
    return torch.randn(n, dim, generator=g, dtype=F64).to(dtype)


# --- dtypes: one behaviour for every layer and flow (convert to the model's dtype) ---------------


@pytest.mark.parametrize("case", LAYERS, ids=lambda c: c.name)
@pytest.mark.parametrize("model_dtype", [F32, F64])
def test_every_layer_computes_in_its_own_dtype(case, model_dtype):
    torch.manual_seed(0)
    layer = case.make(3).to(model_dtype)
    other = F64 if model_dtype == F32 else F32
    z = _points(case, 3, other)
    x = layer(z.to(model_dtype))[0].detach().to(other)  # in the image, for the inverse
    has_floats = any(t.is_floating_point() for t in [*layer.parameters(), *layer.buffers()])
    want = model_dtype if has_floats else other  # parameter-free layers keep the input's
    for step, point in ((layer, z), (layer.inverse, x)):
        out, ladj = step(point)
        ref_out, ref_ladj = step(point.to(model_dtype))
        assert out.dtype == want and ladj.dtype == want
        torch.testing.assert_close(out.to(model_dtype), ref_out)
        torch.testing.assert_close(ladj.to(model_dtype), ref_ladj)


@pytest.mark.parametrize("name", list(FLOWS))
def test_float64_data_into_a_float32_flow(name):
    """The common case: torch.from_numpy gives float64 points, the flow is float32."""
    torch.manual_seed(0)
    flow = FLOWS[name](2)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(20, 2)))
    assert x.dtype == F64
    log_p = flow.log_prob(x)
    assert log_p.dtype == F32 and log_p.shape == (20,)
    torch.testing.assert_close(log_p, flow.log_prob(x.float()))
    assert math.isfinite(nf.nll(flow, x))


def test_values_beyond_float32_are_named_not_called_nan():
    flow = nf.realnvp(2, layers=2, hidden=(8,))
    x = torch.tensor([[1e300, 0.0], [0.0, 1.0]], dtype=F64)
    for call in (lambda: flow.log_prob(x), lambda: nf.nll(flow, x),
                 lambda: nf.fit(flow, x, steps=1, progress=False)):
        with pytest.raises(ValueError, match=r"values up to 1e\+300, beyond the range.*float32"):
            call()
    with pytest.raises(ValueError, match=r"beyond the range"):
        nf.Affine(2)(x)


def test_points_on_another_device_are_a_clear_error():
    layer = nf.Affine(2)
    with pytest.raises(ValueError, match=r"`z` is on meta but the model's parameters are on cpu"):
        layer(torch.zeros(3, 2, device="meta"))


# --- arguments torch cannot read ------------------------------------------------------------------


@pytest.mark.parametrize("mask", [None, "0101", {0: 1}, 3.5])
def test_a_mask_that_is_not_a_sequence(mask):
    for make in (nf.AffineCoupling, nf.AdditiveCoupling):
        with pytest.raises(TypeError, match=r"`mask` must be a sequence of numbers.*alternating_m"):
            make(mask)


@pytest.mark.parametrize("perm", [None, "abc", object()])
def test_a_permutation_that_is_not_a_sequence(perm):
    with pytest.raises(TypeError, match=r"Permutation: `perm` must be a sequence of numbers"):
        nf.Permutation(perm)


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        ([nf.Affine], r"layer 0 is the class Affine, not a layer: build one first, e.g. Affine"),
        ([nf.Affine(2), nf.Planar], r"layer 1 is the class Planar"),
        ([lambda z: (z, 0)], r"layer 0 must be a layer \(a torch.nn.Module"),
        ([nn.Linear(2, 2)], r"layer 0 \(Linear\) has no `inverse` method"),
    ],
)
def test_a_flow_of_things_that_are_not_layers(layers, match):
    with pytest.raises(TypeError, match=match):
        nf.Flow(layers)


def test_the_inverse_of_something_without_an_inverse():
    with pytest.raises(TypeError, match=r"Inverse: `layer` \(Linear\) has no `inverse` method"):
        nf.Inverse(nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"Inverse: `layer` is the class MAF"):
        nf.Inverse(nf.MAF)


@pytest.mark.parametrize("generator", [0, "seed", np.random.default_rng(0)])
def test_a_generator_that_is_not_a_torch_generator(generator):
    flow = nf.realnvp(2, layers=2, hidden=(8,))
    for call in (flow.sample, flow.rsample, flow.sample_and_log_prob, flow.stages):
        with pytest.raises(TypeError, match=r"`generator` must be a torch.Generator"):
            call(3, generator=generator)
    with pytest.raises(TypeError, match=r"`generator` must be a torch.Generator"):
        nf.datasets.moons().sample(3, generator=generator)


@pytest.mark.parametrize("seed", [1.5, "0", -1, True])
def test_a_seed_that_is_not_a_non_negative_int(seed):
    with pytest.raises(ValueError, match=r"`seed` must be a non-negative integer"):
        nf.datasets.moons().sample(3, seed=seed)
    with pytest.raises(ValueError, match=r"`seed` must be a non-negative integer"):
        nf.fit(nf.linear_flow(2), torch.zeros(4, 2), steps=1, seed=seed, progress=False)


def test_numpy_integers_are_counts_like_any_other():
    two, five = np.int64(2), np.int32(5)
    torch.manual_seed(0)
    flow = nf.realnvp(two, layers=two, hidden=(np.int64(8),))
    assert flow.sample(five).shape == (5, 2)
    assert nf.Affine(two).dim == 2 and nf.MAF(two, hidden=[np.int16(4)]).dim == 2
    assert nf.datasets.moons().sample(five).shape == (5, 2)
    history = nf.fit(flow, flow.sample(16), steps=np.int64(3), batch_size=five, progress=False)
    assert len(history.loss) == 3


@pytest.mark.parametrize("where", ["flow", "dataset", "stages"])
def test_more_samples_than_memory_is_a_memory_error_that_says_what_to_do(where):
    n = 10**13  # 80 TB of float32 pairs
    call = {
        "flow": lambda: nf.linear_flow(2).sample(n),
        "dataset": lambda: nf.datasets.moons().sample(n),
        "stages": lambda: nf.linear_flow(2).stages(n),
    }[where]
    with pytest.raises(MemoryError, match=r"not enough memory for 10,000,000,000,000 samples"):
        call()


# --- base distributions ---------------------------------------------------------------------


def test_the_blog_posts_base_gets_the_fix():
    base = D.Normal(torch.zeros(2), torch.ones(2))  # batch shape (2,): two 1-D normals
    with pytest.raises(ValueError, match=r"batch shape \(2,\).*Independent\(base, 1\)"):
        nf.Flow([nf.Affine(2)], base=base)
    flow = nf.Flow([nf.Affine(2)], base=D.Independent(base, 1))
    assert flow.log_prob(torch.zeros(5, 2)).shape == (5,)
    assert flow.sample(4).shape == (4, 2)


@pytest.mark.parametrize(
    ("base", "error", "match"),
    [
        (D.MultivariateNormal(torch.zeros(3), torch.eye(3)), ValueError,
         r"the base acts on D = 3 coordinates but the flow has D = 2"),
        (D.Normal(torch.zeros(2, 2), 1.0), ValueError, r"batch shape \(2, 2\)"),
        (D.Normal(0.0, 1.0), ValueError, r"batch shape \(\) and event shape \(\)"),
        (nf.StandardNormal(3), ValueError, r"the base acts on D = 3"),
        ("normal", TypeError, r"`base` must be a distribution with log_prob and rsample"),
    ],
)
def test_a_base_that_does_not_fit_the_layers(base, error, match):
    with pytest.raises(error, match=match):
        nf.Flow([nf.Affine(2)], base=base)


# --- float32 limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FLOWS))
def test_far_away_points_have_a_tiny_density_not_nan(name):
    torch.manual_seed(0)
    flow = FLOWS[name](2)
    x = torch.tensor([[1e20, 1e20], [-1e18, 3.0], [1e30, -1e30]])
    with torch.no_grad():
        log_p = flow.log_prob(x)
    assert not torch.isnan(log_p).any(), log_p
    assert (log_p < -1e30).all()  # a tiny density (or -inf: below float32's range)


def test_the_radial_layer_at_its_centre_and_far_away_keeps_finite_gradients():
    torch.manual_seed(0)
    layer = nf.Radial(2).double()
    x = torch.stack([layer.z0.detach(), torch.tensor([1e150, -1e150], dtype=F64)])
    x.requires_grad_()
    z, ladj = layer.inverse(x)
    (z.sum() + ladj.sum()).backward()
    assert torch.isfinite(z).all() and torch.isfinite(ladj).all()
    assert torch.isfinite(x.grad).all()


# --- autoregressive layers given a network that is not autoregressive ----------------------------


@pytest.mark.parametrize("layer", [nf.MAF, nf.SplineAutoregressive])
@pytest.mark.parametrize(
    ("make_net", "match"),
    [
        (lambda d, p: nf.MADE(d, (8,), params=p + 1), r"returns \d+ values per point, not"),
        (lambda d, p: nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, p * d)),
         r"depend on that coordinate itself"),
        (lambda d, p: nf.MADE(d, (8,), params=p, order=torch.arange(d, 0, -1)).net[:1],
         r"maps input of shape|returns \d+ values"),
    ],
)
def test_an_autoregressive_layer_refuses_a_network_that_is_not(layer, make_net, match):
    """Such a network made the round trip wrong by 0.1 to 3, silently."""
    params = 2 if layer is nf.MAF else 3 * 8 - 1
    with pytest.raises(ValueError, match=rf"`net` must be autoregressive.*{match}"):
        layer(3, net=make_net(3, params))
    torch.manual_seed(0)
    ok = layer(3, net=nf.MADE(3, (8,), params=params, order=torch.tensor([2, 3, 1])))
    z = torch.randn(5, 3)
    assert nf.testing.round_trip_error(ok, z) < 1e-4
