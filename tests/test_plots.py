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
    cell_outlines,
    count_peaks,
    fold_branches,
    grid,
    panel_grid,
    plot_1d_density,
    plot_area_change,
    plot_density,
    plot_losses,
    plot_planar_fold,
    plot_samples,
    plot_stages,
    signed_area,
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


def rows_of(fig) -> list[list]:
    """The figure's axes grouped by the row of the grid they sit in, top row first."""
    rows: dict[int, list] = {}
    for ax in fig.axes:
        rows.setdefault(ax.get_subplotspec().rowspan.start, []).append(ax)
    return [rows[r] for r in sorted(rows)]


@pytest.mark.parametrize(("panels", "shape"), [(1, [1]), (4, [4]), (6, [3, 3]), (7, [4, 3]),
                                               (9, [3, 3, 3])])
def test_panel_grid_fills_rows_evenly(panels, shape):
    fig, axes = panel_grid(panels, max_cols=4)
    assert len(axes) == len(fig.axes) == panels
    assert [len(row) for row in rows_of(fig)] == shape
    assert fig.get_size_inches()[0] <= 4 * 2.5 + 1e-9  # no wider than a notebook
    with pytest.raises(ValueError, match="max_cols"):
        panel_grid(3, max_cols=0)


def test_plot_stages_of_a_deep_flow_wraps_into_readable_rows():
    flow = Flow([Affine(2) for _ in range(6)])  # 7 panels: one row of 7 was unreadable
    fig = plot_stages(flow, n=100, seed=0)
    assert [len(row) for row in rows_of(fig)] == [4, 3]
    width = fig.get_size_inches()[0]
    assert width <= 10.5
    fig.canvas.draw()  # lays the panels out
    for ax in fig.axes:  # every panel about a fifth of the figure wide, or more
        assert ax.get_position().width * width > 1.7
        assert all(len(line) <= 25 for line in ax.get_title().splitlines())
    assert fig.axes[-1].get_title().startswith("data x (after layer 6)")
    assert len(plot_stages(flow, n=100, max_cols=7).axes) == 7


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


def test_plot_losses_flow_matching_is_labelled_as_such_and_has_no_bound():
    ax = plot_losses(make_history("flow_matching"))
    assert "flow-matching" in ax.get_ylabel() and "KL" not in ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("train flow-matching loss") for t in legend)
    with pytest.raises(ValueError, match="not on the scale of an NLL"):
        plot_losses(make_history("flow_matching"), entropy=1.0)


def test_plot_losses_refuses_a_kind_it_cannot_label():
    with pytest.raises(ValueError, match="kind 'score'"):
        plot_losses(make_history("score"))


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


def test_plot_made_masks_panels_line_up():
    from nfcourse import MADE
    from nfcourse.viz.plots import plot_made_masks

    fig = plot_made_masks(MADE(3, hidden=(5, 5), params=1))  # masks (5, 3), (5, 5), (3, 5)
    fig.canvas.draw()
    masks = [ax.get_position() for ax in fig.axes[1:-1]]
    assert len({round(p.height, 4) for p in masks}) == 1, "every mask panel equally high"
    assert len({round(p.y1, 4) for p in masks}) == 1, "and on one line"
    # a unit of the layer below is equally wide in every mask
    widths = [p.width / cols for p, cols in zip(masks, [3, 5, 5], strict=True)]
    assert max(widths) / min(widths) < 1.05
    assert fig.get_size_inches()[0] <= 10.5


# ----------------------------------------------------------------------------
# areas under a map (lesson 01)


def test_cell_outlines_tile_the_square_counterclockwise():
    outlines, h = cell_outlines(-2.0, 2.0, n=4, per_edge=5)
    assert outlines.shape == (16, 20, 2) and outlines.dtype == torch.float64 and h == 1.0
    areas = signed_area(outlines)
    torch.testing.assert_close(areas, torch.ones(16, dtype=torch.float64))  # counterclockwise
    assert outlines[..., 0].min() == -2.0 and outlines[..., 0].max() == 2.0
    # the first cell is the lower left one, then x_1 changes fastest
    torch.testing.assert_close(outlines[0].min(0).values, torch.tensor([-2.0, -2.0]).double())
    torch.testing.assert_close(outlines[1].min(0).values, torch.tensor([-1.0, -2.0]).double())
    with pytest.raises(ValueError, match="lo < hi"):
        cell_outlines(1.0, 0.0)
    with pytest.raises(ValueError, match="`n`"):
        cell_outlines(n=0)


def test_signed_area_is_negative_for_a_mirrored_outline():
    square = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.0]])
    assert signed_area(square).item() == 2.0
    assert signed_area(square.flip(0)).item() == -2.0
    mirror = torch.tensor([[-1.0, 0.0], [0.0, 1.0]])
    assert signed_area(square @ mirror.T).item() == -2.0
    assert signed_area(torch.stack([square, 3 * square])).tolist() == [2.0, 18.0]


def test_plot_area_change_measures_areas_against_the_jacobian():
    A = torch.tensor([[1.2, 0.6], [-0.3, 0.9]], dtype=torch.float64)

    def bend(z):
        return torch.stack([z[..., 0], z[..., 1] * torch.exp(0.5 * z[..., 0])], dim=-1)

    fig = plot_area_change({"A z": lambda z: z @ A.T, "bend": bend}, n=6)
    grid_ax, linear_ax, bend_ax, scatter = fig.axes
    assert [len(row) for row in rows_of(fig)] == [2, 2]
    assert fig.get_size_inches()[0] <= 10.5
    assert len(grid_ax.collections[0].get_paths()) == 36
    assert "x1.26 to x1.26" in linear_ax.get_title()
    linear_pts, bend_pts = (c.get_offsets() for c in scatter.collections)
    np.testing.assert_allclose(linear_pts, 1.26, rtol=1e-6)  # det A everywhere, measured too
    # bend: |det J| = e^(z1 / 2) at the centres; the measured ratios agree closely
    centres = cell_outlines(n=6)[0].mean(1)
    np.testing.assert_allclose(np.sort(bend_pts[:, 0]), np.sort(np.exp(centres[:, 0].numpy() / 2)),
                               rtol=1e-10)
    np.testing.assert_allclose(bend_pts[:, 1], bend_pts[:, 0], rtol=1e-2)
    with pytest.raises(TypeError, match="maps"):
        plot_area_change([bend])


# ----------------------------------------------------------------------------
# the planar fold (lesson 03)


def test_fold_branches_one_branch_when_invertible_and_three_that_sum_to_one_when_folded():
    (only,) = fold_branches(0.5)
    assert only[2] == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.diff(only[0]) >= 0)
    branches = fold_branches(-3.0)
    masses = [m for _, _, m in branches]
    assert len(branches) == 3 and sum(masses) == pytest.approx(1.0, abs=1e-6)
    assert masses[0] == pytest.approx(masses[2]) and masses[1] > masses[0]
    # the sum over the branches is the density of g(a): compare with a histogram
    a = torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = (a - 3.0 * torch.tanh(a)).numpy()
    heights, edges = np.histogram(x, bins=40, range=(-1.0, 1.0))
    centres = (edges[1:] + edges[:-1]) / 2
    total = sum(np.interp(centres, bx, d) for bx, d, _ in branches)
    np.testing.assert_allclose(heights / (len(x) * 0.05), total, rtol=0.05)
    # a wider a: std enters the normal density
    assert sum(m for _, _, m in fold_branches(-3.0, b=0.4, std=2.0)) == pytest.approx(1.0, 1e-5)
    with pytest.raises(ValueError, match="std"):
        fold_branches(-3.0, std=0.0)


def test_plot_planar_fold_keeps_its_legends_off_the_data():
    fig = plot_planar_fold(n_patch=600, n_samples=20_000)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert len(fig.axes) == 3 and fig.get_size_inches()[0] <= 10.5
    for ax in fig.axes:
        box, legend = ax.get_window_extent(renderer), ax.get_legend().get_window_extent(renderer)
        assert legend.y1 < box.y0, f"the legend of {ax.get_title()!r} covers the panel"
    assert len(fig.axes[1].collections) == 3  # three strips, one colour each
    assert "3 strips overlap" in fig.axes[1].get_title()
    assert len(fig.axes[2].lines) == 2 and len(fig.axes[2].patches) == 240
    # u along w with w.u > -1: no fold, one strip, one curve
    fig = plot_planar_fold(u=(0.5, 0.0), n_patch=100, n_samples=1000)
    assert len(fig.axes[1].collections) == 1 and len(fig.axes[2].lines) == 1
    with pytest.raises(ValueError, match="`w`"):
        plot_planar_fold(w=(0.0, 0.0))


# ----------------------------------------------------------------------------
# peaks (lesson 04)


def test_count_peaks():
    one = D.MultivariateNormal(torch.zeros(2), torch.eye(2))
    assert count_peaks(one, resolution=51) == 1
    two = D.MixtureSameFamily(
        D.Categorical(torch.tensor([0.5, 0.5])),
        D.Independent(D.Normal(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), 0.5), 1),
    )
    assert count_peaks(two, resolution=81) == 2
    assert count_peaks(lambda p: -((p - 3.9) ** 2).sum(-1), resolution=40) == 1  # at the edge
    image = torch.zeros(5, 5)
    assert count_peaks(image) == 0  # flat: no pixel is higher than its neighbours
    image[1, 1], image[3, 4] = 1.0, 2.0
    assert count_peaks(image) == 2 and count_peaks(image.numpy()) == 2
