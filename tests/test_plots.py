"""Tests of the plotting helpers: what they draw, not how it looks."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from torch import nn  # noqa: E402

from nfcourse import Affine, Exp, Flow, Sigmoid  # noqa: E402
from nfcourse.train import History  # noqa: E402
from nfcourse.viz.plots import (  # noqa: E402
    PALETTE,
    SECTOR_COLORS,
    grid,
    plot_1d_density,
    plot_density,
    plot_losses,
    plot_samples,
    plot_stages,
)

D = torch.distributions


@pytest.fixture(autouse=True)
def _seed_and_close():
    torch.manual_seed(0)
    yield
    plt.close("all")


def shifted_flow() -> Flow:
    a = Affine(2)
    with torch.no_grad():
        a.shift.copy_(torch.tensor([1.0, -0.5]))
        a.log_scale.copy_(torch.tensor([0.3, -0.2]))
    return Flow([a])


def test_palette_is_seaborns_colorblind_palette():
    import seaborn as sns

    assert PALETTE == sns.color_palette("colorblind").as_hex()
    assert len(set(SECTOR_COLORS)) == 6


# ----------------------------------------------------------------------------
# grid


def test_grid_layout():
    points, X, Y = grid((-2, 2), resolution=4)
    assert points.shape == (16, 2) and X.shape == Y.shape == (4, 4)
    assert torch.equal(points[:, 0], X.flatten()) and torch.equal(points[:, 1], Y.flatten())
    # pixel centres; x changes along a row (columns), y along a column (rows)
    assert X[0].tolist() == [-1.5, -0.5, 0.5, 1.5] and (X == X[0]).all()
    assert Y[:, 0].tolist() == [-1.5, -0.5, 0.5, 1.5] and (Y.T == Y[:, 0]).all()
    points, X, Y = grid(((0, 1), (-10, 10)), resolution=5, dtype=torch.float64)
    assert points.dtype == torch.float64
    assert 0 < X.min() and X.max() < 1 and -10 < Y.min() and Y.max() < 10
    with pytest.raises(ValueError, match="bounds"):
        grid((1, -1))
    with pytest.raises(ValueError, match="resolution"):
        grid(resolution=0)


def test_density_image_is_not_transposed():
    # the log-density depends on x1 only, increasing: the image must vary along its columns
    ax = plot_density(lambda p: p[:, 0], bounds=((-1, 1), (-3, 3)), resolution=20, log=True)
    img = np.asarray(ax.images[0].get_array())
    assert img.shape == (20, 20)
    assert np.all(np.diff(img, axis=1) > 0) and np.all(np.diff(img, axis=0) == 0)
    assert ax.images[0].get_extent() == [-1, 1, -3, 3]
    assert ax.images[0].origin == "lower"


# ----------------------------------------------------------------------------
# plot_density


def test_plot_density_accepts_a_flow_a_distribution_a_callable_and_an_object():
    flow = shifted_flow()
    mvn = D.MultivariateNormal(torch.tensor([1.0, -0.5]), torch.diag(torch.tensor([1.5, 0.5])))

    class Energy:  # a dataset/energy object with log_prob
        def log_prob(self, x):
            return mvn.log_prob(x)

    points, _, _ = grid((-4, 4), 30)
    for model, reference in [(flow, flow), (mvn, mvn), (Energy(), mvn),
                             (mvn.log_prob, mvn)]:
        ax = plot_density(model, resolution=30)
        img = np.asarray(ax.images[0].get_array())
        with torch.no_grad():
            expected = reference.log_prob(points).exp().reshape(30, 30).numpy()
        np.testing.assert_allclose(img, expected, rtol=1e-5, atol=1e-7)


def test_plot_density_draws_on_the_given_axes_and_keeps_the_model_state():
    flow = shifted_flow().train()
    fig, axes = plt.subplots(1, 2)
    assert plot_density(flow, ax=axes[1], title="q", colorbar=True) is axes[1]
    assert axes[1].get_title() == "q" and len(fig.axes) == 3  # the colour bar
    assert flow.training and all(p.grad is None for p in flow.parameters())


def test_plot_density_handles_zero_density():
    # -inf from a callable, and a distribution whose support is the unit square
    def half(p):
        return torch.where(p[:, 0] > 0, torch.zeros(len(p)), torch.full((len(p),), -math.inf))

    img = np.asarray(plot_density(half, resolution=10).images[0].get_array())
    assert (img[:, :5] == 0).all() and (img[:, 5:] == 1).all()
    log_img = plot_density(half, resolution=10, log=True).images[0].get_array()
    assert log_img.mask[:, :5].all() and not log_img.mask[:, 5:].any()

    square = D.Independent(D.Uniform(torch.zeros(2), torch.ones(2)), 1)
    img = np.asarray(plot_density(square, bounds=(-1, 1), resolution=10).images[0].get_array())
    assert (img[:, :5] == 0).all() and (img[:5] == 0).all() and np.allclose(img[5:, 5:], 1)
    # a flow onto the unit square: its own support as bounds works (pixel centres)
    plot_density(Flow([Affine(2), Sigmoid()]), bounds=(0, 1), resolution=10)
    with pytest.raises(ValueError, match="outside the model's support"):
        plot_density(Flow([Affine(2), Exp()]), resolution=10)


def test_plot_density_warns_about_nan_and_explains_shape_errors():
    with pytest.warns(UserWarning, match="NaN"):
        plot_density(lambda p: p[:, 0].log(), resolution=10)
    with pytest.raises(ValueError, match="Independent"):
        plot_density(D.Normal(torch.zeros(2), 1.0), resolution=10)
    with pytest.raises(TypeError, match="log_prob"):
        plot_density(3.0)


# ----------------------------------------------------------------------------
# plot_samples, plot_stages


def test_plot_samples():
    x = torch.randn(300, 2)
    ax = plot_samples(x, bounds=(-3, 3), title="data")
    (points,) = ax.collections
    np.testing.assert_allclose(points.get_offsets(), x.numpy())
    assert ax.get_xlim() == (-3, 3) and ax.get_title() == "data"
    assert to_hex(points.get_facecolor()[0]) == PALETTE[0]
    ax2 = plot_samples(x.numpy(), ax=ax, color="k")
    assert ax2 is ax and len(ax.collections) == 2
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot_samples(torch.randn(10, 3))


class Swap(nn.Module):
    """Test-local layer: swap the two coordinates (a volume-preserving permutation)."""

    dim = 2

    def forward(self, z):
        return z.flip(-1), z.new_zeros(z.shape[:-1])

    def inverse(self, x):
        return x.flip(-1), x.new_zeros(x.shape[:-1])


def test_plot_stages_one_panel_per_stage_with_consistent_colours():
    flow = Flow([shifted_flow().transform[0], Swap(), Affine(2)])
    fig = plot_stages(flow, n=500, seed=0)
    assert len(fig.axes) == 4  # base + 3 layers
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "base z" and "Swap" in titles[2] and titles[-1].startswith("data x")
    stages = flow.stages(500, generator=torch.Generator().manual_seed(0))
    colours = [ax.collections[0].get_facecolor() for ax in fig.axes]
    for ax, points, c in zip(fig.axes, stages, colours, strict=True):
        np.testing.assert_allclose(ax.collections[0].get_offsets(), points.numpy(), rtol=1e-6)
        np.testing.assert_array_equal(c, colours[0])  # a point keeps its colour
    # the colour is the sector of the base point's direction
    z = stages[0].numpy()
    angle = np.arctan2(z[:, 1], z[:, 0])
    first = (angle >= -math.pi) & (angle < -2 * math.pi / 3)
    assert {to_hex(c) for c in colours[0][first]} == {SECTOR_COLORS[0]}
    assert len({to_hex(c) for c in colours[0]}) == 6
    fig = plot_stages(flow, n=50, bounds=(-5, 5), titles=list("abcd"))
    assert [ax.get_title() for ax in fig.axes] == list("abcd")
    assert all(ax.get_xlim() == (-5, 5) for ax in fig.axes)
    with pytest.raises(ValueError, match="one entry per panel"):
        plot_stages(flow, titles=["a"])


# ----------------------------------------------------------------------------
# plot_losses


def make_history(kind="nll"):
    steps = list(range(1, 201))
    return History(step=steps, loss=[2.0 + 3.0 / s for s in steps], val_step=[100, 200],
                   val_nll=[2.1, 2.05], seconds=1.0, kind=kind)


def test_plot_losses():
    ax = plot_losses(make_history(), entropy=1.9, label="affine")
    gids = [line.get_gid() for line in ax.lines]
    assert gids.count("nfcourse-train") == 1 and gids.count("nfcourse-val") == 1
    (bound,) = [line for line in ax.lines if line.get_gid() == "nfcourse-bound"]
    assert list(bound.get_ydata()) == [1.9, 1.9]
    assert "entropy" in bound.get_label() and "best possible NLL" in bound.get_label()
    assert ax.get_ylabel() == "NLL (nats)" and ax.get_xlabel() == "step"
    (val,) = [line for line in ax.lines if line.get_gid() == "nfcourse-val"]
    assert list(val.get_xdata()) == [100, 200] and list(val.get_ydata()) == [2.1, 2.05]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("affine: ") for t in legend)
    # a second history on the same axes gets the next colour
    plot_losses(make_history(), ax=ax, label="other")
    trains = [line for line in ax.lines if line.get_gid() == "nfcourse-train"]
    assert [to_hex(line.get_color()) for line in trains] == PALETTE[:2]


def test_plot_losses_reverse_kl():
    ax = plot_losses(make_history("reverse_kl"), log_normalizer=1.5)
    assert "KL" in ax.get_ylabel()
    (bound,) = [line for line in ax.lines if line.get_gid() == "nfcourse-bound"]
    assert list(bound.get_ydata()) == [-1.5, -1.5]


# ----------------------------------------------------------------------------
# plot_1d_density


def test_plot_1d_density_formula_vs_histogram():
    lognormal = D.LogNormal(0.0, 1.0)
    samples = torch.randn(2000).exp()
    ax = plot_1d_density(lognormal, samples, bounds=(-1, 6), bins=35)
    (curve,) = ax.lines
    xs, ys = curve.get_xdata(), curve.get_ydata()
    assert (ys[xs <= 0] == 0).all()  # zero density outside the support, no error
    inside = xs > 0
    expected = lognormal.log_prob(torch.as_tensor(xs[inside])).exp().numpy()
    np.testing.assert_allclose(ys[inside], expected, rtol=1e-5, atol=1e-12)
    assert len(ax.patches) == 35
    heights = np.array([p.get_height() for p in ax.patches])
    # bars estimate the density: their area is the fraction of ALL samples inside the bounds
    inside_share = ((samples > -1) & (samples < 6)).double().mean().item()
    assert inside_share < 0.99  # the bounds cut off some mass, so the distinction matters
    assert heights.sum() * (7 / 35) == pytest.approx(inside_share)


def test_plot_1d_density_accepts_a_1d_flow_and_a_callable():
    flow = Flow([Affine(1)])
    ax = plot_1d_density(flow, torch.randn(500, 1))
    xs, ys = ax.lines[0].get_xdata(), ax.lines[0].get_ydata()
    np.testing.assert_allclose(ys, np.exp(-xs**2 / 2) / math.sqrt(2 * math.pi), rtol=1e-5)
    ax = plot_1d_density(lambda x: -x.abs() - math.log(2), bounds=(-3, 3))
    assert ax.lines[0].get_ydata().max() == pytest.approx(0.5, rel=1e-2)
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, 1\)"):
        plot_1d_density(flow, torch.randn(10, 2))


# ----------------------------------------------------------------------------
# MADE's masks (lesson 05)


def test_plot_made_masks_draws_the_network_each_mask_and_the_connectivity():
    from nfcourse import IAF, MADE, MAF
    from nfcourse.viz.plots import plot_made_masks

    made = MADE(3, hidden=(5, 4), params=1)
    fig = plot_made_masks(made)
    net, *mask_axes, conn = fig.axes
    assert len(mask_axes) == len(made.masks) == 3
    for ax, mask in zip(mask_axes, made.masks, strict=True):
        assert np.array_equal(ax.images[0].get_array(), mask.numpy())
    # one line per kept connection, one marker per unit
    assert len(net.lines) == int(sum(m.sum() for m in made.masks))
    assert sum(len(c.get_offsets()) for c in net.collections) == 3 + 5 + 4 + 3
    assert np.array_equal(np.ma.filled(conn.images[0].get_array(), 0), made.connectivity.numpy())
    assert "NOT" not in conn.get_title() and "strictly lower-triangular" in conn.get_title()

    # a permuted order is drawn in degree order: strictly lower-triangular again
    maf = MAF(3, hidden=(4,), order=torch.tensor([2, 3, 1]))
    conn = plot_made_masks(maf).axes[-1]
    image = np.ma.filled(conn.images[0].get_array(), 0)
    assert image.shape == (6, 3)
    for block in (image[:3], image[3:]):
        assert not np.triu(block).any() and block[np.tril_indices(3, -1)].all()
    assert len(plot_made_masks(IAF(2, hidden=(3,))).axes) == 4


def test_plot_made_masks_flags_a_network_that_is_not_autoregressive():
    from nfcourse import MADE
    from nfcourse.viz.plots import plot_made_masks

    made = MADE(2, hidden=(3,), params=1)
    made.net[0].mask.fill_(1.0)  # hidden units now see x_2 too, so output 2 sees its own input
    title = plot_made_masks(made).axes[-1].get_title()
    assert "NOT strictly lower-triangular" in title


def test_plot_made_masks_refuses_other_models():
    from nfcourse.viz.plots import plot_made_masks

    with pytest.raises(TypeError, match=r"expected an nfcourse.MADE.*MADE\(3, hidden"):
        plot_made_masks(nn.Linear(2, 2))
