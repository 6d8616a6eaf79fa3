"""Conditional layers and flows: what the battery of tests/test_layers.py cannot see.

The battery runs every conditional layer with one context fixed (registry rows
``Conditional*``): log-dets against the autograd Jacobian, round trips, inverse
log-dets. Here: the output really depends on the context (and the test that says
so catches a layer that ignores it), one context per point, broadcasting, the
density integrating to 1 for each context, the flows, the errors, and ``fit``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from registry import CASE, HIDDEN, build, perturb

import nfcourse as nf
from nfcourse import testing
from nfcourse.flow import conditional_maf, conditional_realnvp
from nfcourse.layers.conditional import (
    ConditionalAffineCoupling,
    ConditionalMADE,
    ConditionalMAF,
    Conditioned,
)

F64 = torch.float64
NAMES = [
    "ConditionalAffineCoupling",
    "ConditionalAffineCoupling-alternating",
    "ConditionalMAF",
    "ConditionalMAF-order",
    "Inverse-ConditionalMAF",
]


def conditional_layer(name: str, dim: int = 5):
    """The registry's layer (perturbed, float64) without its fixed context."""
    return build(CASE[name], dim).layer


def contexts(n: int, seed: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=F64)


def points(n: int, dim: int = 5, seed: int = 4) -> torch.Tensor:
    return 1.5 * torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def context_effect(layer, z: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor) -> float:
    """How much the output and ladj of both directions change from context c1 to c2."""
    gaps = []
    for step in (layer, layer.inverse):
        (a, la), (b, lb) = step(z, c1), step(z, c2)
        gaps += [(a - b).abs().max().item(), (la - lb).abs().max().item()]
    return min(gaps)


class IgnoresContext(ConditionalAffineCoupling):
    """A planted bug: the network is always given a zero context."""

    def forward(self, z, context=None):
        return super().forward(z, torch.zeros_like(context))

    def inverse(self, x, context=None):
        return super().inverse(x, torch.zeros_like(context))


@pytest.mark.parametrize("name", NAMES)
def test_the_output_and_the_ladj_depend_on_the_context(name):
    layer = conditional_layer(name)
    c = contexts(2)
    assert context_effect(layer, points(8), c[0], c[1]) > 1e-3


def test_the_context_test_catches_a_layer_that_ignores_its_context():
    torch.manual_seed(0)
    layer = perturb(IgnoresContext(nf.half_mask(5), 3, HIDDEN))
    c = contexts(2)
    assert context_effect(layer, points(8), c[0], c[1]) == 0.0
    # and the property battery alone would not have noticed: it is a fine layer for each c
    fixed = Conditioned(layer, c[0])
    z = points(8)
    assert testing.ladj_error(fixed, z) < 1e-10 and testing.round_trip_error(fixed, z) < 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_one_context_per_point_is_the_same_as_one_call_per_point(name):
    layer = conditional_layer(name)
    z, c = points(6), contexts(6)
    for step in (layer, layer.inverse):
        out, ladj = step(z, c)
        for i in range(6):
            one, ladj_one = step(z[i], c[i])
            assert torch.allclose(out[i], one, atol=1e-12)
            assert torch.allclose(ladj[i], ladj_one, atol=1e-12)
    x, ladj = layer(z, c)
    z_back, ladj_back = layer.inverse(x, c)
    assert (z_back - z).abs().max() < 1e-10 and (ladj + ladj_back).abs().max() < 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_contexts_broadcast_against_the_points(name):
    layer = conditional_layer(name)
    z, c = points(6), contexts(4)
    shared, ladj = layer(z, c[0])  # one context for the whole batch
    expanded, ladj_expanded = layer(z, c[0].expand(6, 3))
    assert torch.allclose(shared, expanded) and torch.allclose(ladj, ladj_expanded)
    many, ladj_many = layer(z[0], c)  # one point under 4 contexts
    assert many.shape == (4, 5) and ladj_many.shape == (4,)
    assert torch.allclose(many[2], layer(z[0], c[2])[0])
    grid, ladj_grid = layer(z[:, None, :], c[None])  # every point with every context
    assert grid.shape == (6, 4, 5) and ladj_grid.shape == (6, 4)
    with pytest.raises(ValueError, match="does not broadcast against the points"):
        layer(z, contexts(5))


@pytest.mark.parametrize("name", NAMES)
def test_the_context_is_not_transformed_and_the_jacobian_in_x_stays_triangular(name):
    """The Jacobian with respect to z, at points with different contexts, is triangular in one
    order: the context enters the networks only."""
    layer = conditional_layer(name, 3)
    z, c = points(5, 3), contexts(5)
    for i in range(5):
        jac = testing.autograd_jacobian(lambda p, i=i: layer(p, c[i])[0], z[i : i + 1])
        assert testing.is_triangular(jac)
        ladj = torch.linalg.slogdet(jac).logabsdet
        assert torch.allclose(layer(z[i], c[i])[1], ladj[0], atol=1e-10)


def test_conditional_made_is_autoregressive_in_x_and_reads_all_of_the_context():
    torch.manual_seed(0)
    net = perturb(ConditionalMADE(4, 3, (16, 16), params=2, order=torch.tensor([2, 4, 1, 3])))
    x, c = points(1, 4)[0], contexts(1)[0]
    jx = torch.autograd.functional.jacobian(lambda t: net(t, c), x)  # (8, 4)
    jc = torch.autograd.functional.jacobian(lambda t: net(x, t), c)  # (8, 3)
    degree = net.made.order.repeat(2)
    allowed = degree[:, None] > net.made.order[None, :]
    assert (jx[~allowed] == 0).all() and (jx[allowed].abs() > 0).any()
    # every output but those of degree 1 (which see no x) depends on every context value
    assert (jc.abs() > 0).all()


@pytest.mark.parametrize("build_flow", [conditional_realnvp, conditional_maf])
def test_a_conditional_density_integrates_to_one_for_each_context(build_flow):
    torch.manual_seed(0)
    flow = build_flow(2, 3, layers=3, hidden=HIDDEN)
    flow = nf.Flow(perturb(flow.transform, 0.4), dim=2).double()
    n, lo, hi = 500, -9.0, 9.0
    h = (hi - lo) / n
    ticks = lo + h * (torch.arange(n, dtype=F64) + 0.5)
    grid = torch.cartesian_prod(ticks, ticks)
    masses = []
    with torch.no_grad():
        for c in contexts(2):
            masses.append(flow.log_prob(grid, context=c).exp().sum().item() * h * h)
    assert all(math.isclose(m, 1.0, abs_tol=5e-3) for m in masses), masses
    # and the two contexts give two different densities
    with torch.no_grad():
        lp = [flow.log_prob(points(50, 2), context=c) for c in contexts(2)]
    assert (lp[0] - lp[1]).abs().max() > 1e-2


@pytest.mark.parametrize("build_flow", [conditional_realnvp, conditional_maf])
def test_conditional_flows_sample_with_their_log_densities(build_flow):
    torch.manual_seed(0)
    flow = build_flow(3, 2, layers=3, hidden=HIDDEN).double()
    c = contexts(4)[:, :2]
    x, log_q = flow.sample_and_log_prob(7, context=c)  # 7 samples for each of 4 contexts
    assert x.shape == (7, 4, 3) and log_q.shape == (7, 4)
    assert torch.allclose(flow.log_prob(x, context=c), log_q, atol=1e-8)
    assert flow.sample(5, context=c[0]).shape == (5, 3)
    g1, g2 = (torch.Generator().manual_seed(1) for _ in range(2))
    assert torch.equal(flow.sample(5, g1, context=c[0]), flow.sample(5, g2, context=c[0]))
    stages = flow.stages(10, context=c[1])
    assert len(stages) == len(flow.transform) + 1 and stages[-1].shape == (10, 3)
    assert flow.conditional and flow.context_dim == 2


def test_a_one_dimensional_conditional_maf_is_a_conditional_density_of_one_variable():
    torch.manual_seed(0)
    flow = conditional_maf(1, 2, layers=2, hidden=(8,)).double()
    x, log_q = flow.sample_and_log_prob(5, context=contexts(1)[0, :2])
    assert x.shape == (5, 1) and torch.allclose(flow.log_prob(x, context=contexts(1)[0, :2]), log_q)


def test_unconditional_layers_and_flows_are_unchanged():
    flow = nf.realnvp(2, layers=2, hidden=(8,))
    assert not flow.conditional and flow.context_dim is None
    assert flow.log_prob(torch.zeros(3, 2)).shape == (3,)
    mixed = nf.Flow([nf.Affine(2), ConditionalAffineCoupling(nf.half_mask(2), 1, (8,))])
    assert mixed.conditional and mixed.context_dim == 1  # Compose passes c to one layer only
    x = torch.randn(4, 2)
    assert mixed.log_prob(x, context=torch.ones(1)).shape == (4,)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda f: f.log_prob(torch.zeros(4, 2)),
            ValueError,
            r"Flow.log_prob: this flow is conditional.*`context` is missing.*shape \(3,\)",
        ),
        (lambda f: f.sample(4), ValueError, r"Flow.sample: this flow is conditional"),
        (
            lambda f: f.log_prob(torch.zeros(4, 2), context=torch.zeros(4, 2)),
            ValueError,
            r"`context` must have shape \(\.\.\., 3\).*got shape \(4, 2\).*context_dim=2",
        ),
        (
            lambda f: f.log_prob(torch.zeros(4, 2), context=[0.0, 1.0, 2.0]),
            TypeError,
            r"`context` must be a torch.Tensor",
        ),
        (
            lambda f: f.log_prob(torch.zeros(4, 2), context=torch.zeros(3, dtype=torch.long)),
            TypeError,
            "floating-point",
        ),
        (
            lambda f: f.log_prob(torch.zeros(4, 2), context=torch.full((3,), math.nan)),
            ValueError,
            "context",
        ),
        (
            lambda f: f.log_prob(torch.zeros(4, 2), context=torch.zeros(5, 3)),
            ValueError,
            "does not broadcast against the points",
        ),
        (
            lambda f: nf.realnvp(2).log_prob(torch.zeros(4, 2), context=torch.zeros(3)),
            ValueError,
            r"this flow is not conditional.*Drop context=.*conditional_realnvp",
        ),
        (lambda f: nf.realnvp(2).sample(3, context=torch.zeros(3)), ValueError, "not conditional"),
        (
            lambda f: f.transform.layers[0](torch.zeros(4, 2)),
            ValueError,
            r"ConditionalAffineCoupling: this is conditional: it needs `context`",
        ),
        (
            lambda f: f.transform.layers[0](torch.zeros(4, 3), torch.zeros(3)),
            ValueError,
            r"`z` must have shape \(\.\.\., 2\)",
        ),
        (lambda f: Conditioned(nf.Affine(2), torch.zeros(3)), TypeError, "is not conditional"),
        (
            lambda f: nf.Compose(ConditionalMAF(2, 1), ConditionalMAF(2, 2)),
            ValueError,
            "contexts of different sizes",
        ),
        (lambda f: ConditionalAffineCoupling(nf.half_mask(2), 0), ValueError, "context_dim"),
        (
            lambda f: ConditionalAffineCoupling(nf.half_mask(2), 3, net=nf.mlp(1, 2)),
            ValueError,
            r"\(4 inputs\).*in_features=1",
        ),
        (lambda f: conditional_realnvp(1, 2), ValueError, "dim"),
    ],
    ids=lambda v: None if callable(v) or isinstance(v, type) else v[:30],
)
def test_bad_contexts_get_clear_errors(call, error, match):
    flow = conditional_realnvp(2, 3, layers=2, hidden=(8,))
    with pytest.raises(error, match=match):
        call(flow)


def fit_data(n: int, seed: int):
    """x | c ~ N(2c (1, 1), 0.3^2 I), c ~ U(-1, 1): entropy 2 * 0.5 log(2 pi e 0.09)."""
    g = torch.Generator().manual_seed(seed)
    c = 2 * torch.rand(n, 1, generator=g) - 1
    return 2 * c + 0.3 * torch.randn(n, 2, generator=g), c


def test_fit_with_contexts_learns_the_conditional_density():
    torch.manual_seed(0)
    (x, c), (x_val, c_val) = fit_data(2000, 1), fit_data(2000, 2)
    flow = conditional_realnvp(2, 1, layers=3, hidden=(16, 16))
    history = nf.fit(
        flow,
        x,
        context=c,
        val_data=x_val,
        val_context=c_val,
        steps=300,
        lr=5e-3,
        batch_size=256,
        progress=False,
        seed=0,
    )
    entropy = 2 * 0.5 * math.log(2 * math.pi * math.e * 0.09)
    assert history.val_nll and math.isfinite(history.final_val_nll)
    with torch.no_grad():
        held_out = -flow.log_prob(x_val, context=c_val).mean().item()
    assert math.isclose(history.final_val_nll, held_out, rel_tol=1e-5)
    # the flow uses the context: far better than the best density of x alone could be
    plain = nf.realnvp(2, layers=3, hidden=(16, 16))
    nf.fit(plain, x, steps=300, lr=5e-3, batch_size=256, progress=False, seed=0)
    assert held_out < nf.nll(plain, x_val) - 0.5
    assert entropy - 0.05 < held_out < entropy + 0.6, (held_out, entropy)
    # a 1-D context may come as shape (N,)
    nf.fit(flow, x, context=c[:, 0], steps=2, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, r"the flow is conditional.*`context` is missing"),
        ({"context": torch.zeros(10, 1)}, r"`context` must have shape \(50, 1\)"),
        ({"context": torch.zeros(50, 2)}, r"`context` must have shape \(\.\.\., 1\)"),
        ({"context": torch.full((50, 1), math.nan)}, "context"),
        (
            {"context": torch.zeros(50, 1), "val_data": torch.zeros(5, 2)},
            r"`val_context` is missing",
        ),
        ({"context": torch.zeros(50, 1), "val_context": torch.zeros(5, 1)}, "without `val_data`"),
    ],
)
def test_fit_gets_clear_errors_about_contexts(kwargs, match):
    flow = conditional_realnvp(2, 1, layers=2, hidden=(8,))
    with pytest.raises(ValueError, match=match):
        nf.fit(flow, torch.zeros(50, 2), steps=1, progress=False, **kwargs)
    with pytest.raises(ValueError, match="the flow is not conditional"):
        nf.fit(
            nf.realnvp(2), torch.zeros(50, 2), context=torch.zeros(50, 1), steps=1, progress=False
        )


# --- the lesson's data: a conditional density and a simulator with an exact posterior -----------


def test_banana_log_prob_is_a_normalized_density_for_every_context_and_its_entropy():
    from nfcourse.data.simulators import Banana

    banana = Banana(noise=0.5)
    h = 0.05  # x2 reaches c (x1^2 - 1), far out where x1 is: a tall box
    grid = torch.cartesian_prod(
        torch.arange(-7, 7, h, dtype=F64) + h / 2, torch.arange(-80, 80, h, dtype=F64) + h / 2
    )
    for c in (-1.5, 0.0, 0.7):
        assert math.isclose(banana.log_prob(grid, c).exp().sum().item() * h * h, 1, abs_tol=1e-6)
    x, c = banana.sample(50_000, seed=0)
    assert x.shape == (50_000, 2) and c.shape == (50_000, 1)
    assert -1.5 <= c.min() and c.max() <= 1.5
    nll = -banana.log_prob(x.double(), c.double()).mean().item()
    assert math.isclose(nll, banana.entropy(), abs_tol=0.02)
    # samples at one context follow that context's curve: E[x2 | x1] = c (x1^2 - 1)
    x = banana.sample_given(20_000, 1.2, seed=1)
    slope = (x[:, 1] * (x[:, 0] ** 2 - 1)).mean() / ((x[:, 0] ** 2 - 1) ** 2).mean()
    assert math.isclose(slope.item(), 1.2, abs_tol=0.05)
    assert torch.equal(banana.sample(5, seed=3)[0], banana.sample(5, seed=3)[0])


def test_the_simulators_posterior_is_normalized_bimodal_and_its_credibility_is_uniform():
    from nfcourse.data.simulators import SquareSimulator

    sim = SquareSimulator(noise=0.5)
    post = sim.posterior(torch.tensor([2.0, 0.5]))
    finer = sim.posterior(torch.tensor([2.0, 0.5]), step=0.015)
    assert math.isclose(post.log_evidence, finer.log_evidence, abs_tol=1e-8)
    assert math.isclose(post.log_p.exp().sum().item() * post.cell, 1.0, abs_tol=1e-9)
    # the evidence against a Monte Carlo estimate over the prior
    theta = torch.randn(400_000, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    lik = sim.log_likelihood(theta, torch.tensor([2.0, 0.5], dtype=F64))
    mc = (torch.logsumexp(lik, 0) - math.log(len(theta))).item()
    assert math.isclose(mc, post.log_evidence, abs_tol=0.02)
    # two modes, mirror images in theta_1: near (+-sqrt 2, 0.5 -+ sqrt 2)
    modes = torch.tensor([[2**0.5, 0.5 - 2**0.5], [-(2**0.5), 0.5 + 2**0.5]], dtype=F64)
    middle = torch.tensor([0.0, 0.5], dtype=F64)
    lp = post.log_prob(modes)
    assert (lp - post.log_prob(middle)).min() > 3  # the middle between them is a valley
    mean, cov = post.moments()
    assert post.log_prob(mean).item() < lp.max().item() - 2  # the mean sits in the valley
    assert cov[0, 0] > 1.0
    # theta drawn with x from the joint: its credibility is uniform (the exact posterior
    # is calibrated), and a wrong posterior is not
    theta, x = sim.sample_joint(300, seed=4)
    cred = torch.stack(
        [sim.posterior(xi, step=0.08).credibility(ti) for ti, xi in zip(theta, x, strict=True)]
    )
    for level in (0.25, 0.5, 0.75, 0.9):
        assert abs((cred < level).double().mean().item() - level) < 0.08
    shifted = torch.stack(
        [
            sim.posterior(xi + 1.0, step=0.08).credibility(ti)
            for ti, xi in zip(theta, x, strict=True)
        ]
    )
    assert (shifted < 0.5).double().mean().item() < 0.35


def test_the_simulator_and_banana_refuse_bad_arguments():
    from nfcourse.data.simulators import Banana, SquareSimulator

    with pytest.raises(ValueError, match="noise"):
        SquareSimulator(noise=-1.0)
    with pytest.raises(ValueError, match="one observation of shape"):
        SquareSimulator().posterior(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="lo < hi"):
        Banana(context_range=(1.0, -1.0))


# --- the lesson's pictures ------------------------------------------------------------------------


def test_context_figure_and_explorer_draw_the_exact_and_the_flow_density_at_extreme_contexts():
    import matplotlib

    matplotlib.use("Agg")
    from nfcourse.data.simulators import Banana
    from nfcourse.viz.conditional import context_explorer, context_figure, coverage_figure

    torch.manual_seed(0)
    flow = conditional_realnvp(2, 1, layers=2, hidden=(8,))
    banana = Banana()
    for c in (-1.5, 1.5):
        exact_ax, flow_ax = context_figure(flow, c, banana.log_prob, resolution=50)
        image = exact_ax.images[0].get_array()
        assert image.shape == (50, 50)
        # the exact panel's brightest pixel sits on the curve x2 = c (x1^2 - 1)
        row, col = np.unravel_index(np.argmax(image), image.shape)
        x1, x2 = -4 + 8 * (col + 0.5) / 50, -4 + 8 * (row + 0.5) / 50
        assert abs(x2 - c * (x1**2 - 1)) < 0.5, (x1, x2)
        assert flow_ax.images[0].get_array().shape == (50, 50)
    widget = context_explorer(flow, banana.log_prob, resolution=20)
    assert widget.redraws == 1 and widget.message.value == ""
    for value in (widget.slider.min, widget.slider.max):
        widget.slider.value = value
    assert widget.redraws == 3 and widget.message.value == ""
    with pytest.raises(ValueError, match="context_dim=1"):
        context_figure(conditional_realnvp(2, 3, layers=1, hidden=(4,)), 0.0)
    with pytest.raises(ValueError, match="lo < hi"):
        context_explorer(flow, context_range=(1, 0))
    ax = coverage_figure({"flow": [0.1, 0.5, 0.9]}, [0.1, 0.5, 0.9], band=100)
    assert len(ax.lines) == 2 and len(ax.collections) == 1


def test_sample_credibility_estimates_the_mass_above_the_true_density():
    from nfcourse.data.simulators import sample_credibility

    # q = N(0, I) in 2-D: the mass where q is higher than at theta is 1 - exp(-|theta|^2 / 2)
    g = torch.Generator().manual_seed(0)
    samples = torch.randn(20_000, 5, 2, generator=g, dtype=F64)
    theta = torch.tensor([[0.1, 0.0], [0.5, -0.5], [1.0, 1.0], [-2.0, 0.3], [3.0, 0.0]], dtype=F64)
    normal = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=F64), torch.eye(2))
    estimate = sample_credibility(normal.log_prob(samples), normal.log_prob(theta))
    exact = 1 - torch.exp(-0.5 * (theta**2).sum(-1))
    assert estimate.shape == (5,) and (estimate - exact).abs().max() < 0.015
