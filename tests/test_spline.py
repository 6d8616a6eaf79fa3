"""The rational-quadratic spline: its knots, and the numerical traps of spline code.

The layers' generic properties (round trip, ladj against autograd, triangular
Jacobians, densities integrating to 1) are in the battery over tests/registry.py.
"""

from __future__ import annotations

import pytest
import torch

import nfcourse as nf
from nfcourse.layers.spline import (
    BOUND,
    MIN_BIN,
    MIN_DERIVATIVE,
    bin_forward,
    bin_inverse,
    knots,
    spline,
)

F64 = torch.float64


def raw_params(n: int, bins: int = 8, scale: float = 2.0, dtype=F64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, 3 * bins - 1, generator=g, dtype=dtype)


def test_knots_span_the_interval_with_minimum_bins_and_unit_end_slopes():
    raw = raw_params(100, bins=6, scale=20.0)  # extreme: softmax nearly one-hot
    xs, ys, ds = knots(raw, bound=3.0)
    for t in (xs, ys):
        assert t.shape == (100, 7)
        assert (t[:, 0] == -3.0).all() and (t[:, -1] == 3.0).all()
        assert (t.diff(dim=-1) >= 6.0 * MIN_BIN * (1 - 1e-9)).all()  # no bin collapses
    assert (ds[:, [0, -1]] == 1).all() and (ds >= MIN_DERIVATIVE).all()


def test_zero_parameters_give_the_identity():
    x = torch.linspace(-7, 7, 141, dtype=F64)
    y, log_d = spline(x, torch.zeros(141, 23, dtype=F64))
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(log_d, torch.zeros_like(x))


def test_the_spline_is_increasing_and_continuous_with_its_derivative_at_the_bounds():
    raw = raw_params(1).expand(20001, -1)
    x = torch.linspace(-BOUND - 1, BOUND + 1, 20001, dtype=F64)
    y, log_d = spline(x, raw)
    assert (y.diff() > 0).all()
    # C^1 at +-B: slope 1 (log-derivative 0) at the ends from inside, as in the tails
    ends = torch.tensor([-BOUND, BOUND], dtype=F64)
    for side in (0.0, 1e-12):
        _, log_d_end = spline(ends + side * ends.sign() * torch.tensor([1.0, 1.0]), raw[:2])
        assert log_d_end.abs().max() < 1e-9


def test_points_exactly_on_a_knot_get_the_same_value_from_both_sides():
    raw = raw_params(1, bins=5)
    xs, ys, _ = knots(raw)
    on = xs[0]  # every knot, including the ends
    r = raw.expand(len(on), -1)
    y, _ = spline(on, r)
    torch.testing.assert_close(y, ys[0], rtol=0, atol=1e-12)
    for side in (-1e-9, 1e-9):
        y_near, _ = spline(on + side, r)
        assert (y_near - y).abs().max() < 1e-7


def test_the_inverse_at_and_next_to_every_knot_in_float32_is_finite():
    """Round-off makes b^2 - 4ac slightly negative just below a knot; without the clamp at
    0 the square root gives NaN there (a known bug of public spline code)."""
    raw = 2 * raw_params(256, bins=10, dtype=torch.float32, scale=1.0)
    xs, ys, _ = knots(raw)
    below = torch.nextafter(ys, torch.tensor(-torch.inf))
    above = torch.nextafter(ys, torch.tensor(torch.inf))
    for y in (ys, below, above):
        y = y.T.contiguous()  # (K + 1, 256): every knot of every spline
        x, log_d = spline(y, raw.expand(y.shape[0], -1, -1), inverse=True)
        assert torch.isfinite(x).all() and torch.isfinite(log_d).all()
        assert (x - xs.T).abs().max() < 1e-3  # float32, and some bins are steep


def test_the_root_is_taken_in_its_stable_form():
    """A straight bin (d0 = d1 = s) makes a = 0: the textbook root divides 0 by 0."""
    s = torch.tensor(1.7, dtype=F64)
    y0, h = torch.tensor(-0.2, dtype=F64), torch.tensor(0.85, dtype=F64)
    xi = torch.linspace(0, 1, 11, dtype=F64)
    y, _ = bin_forward(xi, y0, h, s, s, s)
    torch.testing.assert_close(bin_inverse(y, y0, h, s, s, s), xi)


def test_round_trip_of_many_points_in_float32():
    raw = raw_params(1, scale=1.0, dtype=torch.float32).expand(100001, -1)
    x = torch.linspace(-BOUND - 2, BOUND + 2, 100001)
    y, log_d = spline(x, raw)
    x_back, log_d_back = spline(y, raw, inverse=True)
    assert (x_back - x).abs().max() < 1e-4
    assert (log_d + log_d_back).abs().max() < 1e-4


@pytest.mark.parametrize("inverse", [False, True])
def test_points_far_outside_give_finite_gradients(inverse):
    """The branch torch.where does not take still runs; it must not make a NaN."""
    x = torch.tensor([1e30, -1e30, 50.0, 0.5], requires_grad=True)
    raw = raw_params(4, dtype=torch.float32).requires_grad_()
    y, log_d = spline(x, raw, inverse=inverse)
    (y.sum() + log_d.sum()).backward()
    torch.testing.assert_close(y[:3], x[:3].detach())
    assert (log_d[:3] == 0).all()
    assert torch.isfinite(x.grad).all() and torch.isfinite(raw.grad).all()
    assert (raw.grad[:3] == 0).all()  # the tails do not depend on the knots


@pytest.mark.parametrize("make", [
    lambda: nf.SplineCoupling(nf.alternating_mask(2), (8,)),
    lambda: nf.SplineAutoregressive(2, (8,)),
])
def test_a_whole_batch_in_the_tails(make):
    layer = make()
    z = torch.full((16, 2), 40.0)
    z[:, 1] = -30.0
    for step in (layer, layer.inverse):
        out, ladj = step(z)
        torch.testing.assert_close(out, z)
        assert (ladj == 0).all()


def test_bad_spline_arguments_are_clear_errors():
    with pytest.raises(ValueError, match=r"`bins` must be an integer >= 2"):
        nf.SplineCoupling(nf.half_mask(2), bins=1)
    with pytest.raises(ValueError, match=r"`bound` must be a positive finite number"):
        nf.SplineAutoregressive(2, bound=0.0)
    with pytest.raises(ValueError, match=r"`bins` must be an integer >= 2"):
        nf.nsf(2, bins=2.5)


def test_nsf_builds_a_flow_of_spline_layers():
    torch.manual_seed(0)
    flow = nf.nsf(3, layers=2, hidden=(8,), bins=4, bound=2.0)
    layers = [la for la in flow.transform.layers if isinstance(la, nf.SplineAutoregressive)]
    assert len(layers) == 2 and all(la.bins == 4 and la.bound == 2.0 for la in layers)
    x, log_q = flow.sample_and_log_prob(32)
    torch.testing.assert_close(flow.log_prob(x), log_q, atol=1e-4, rtol=1e-4)
