"""The ipywidgets explorers: the pure drawing functions behind them, and the widgets' wiring.

Errors inside an ipywidgets callback are only printed (here: shown in the widget's
message line), so a headless notebook run would stay green: every drawing function
is called directly, with the extreme values a slider can reach.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import nfcourse as nf  # noqa: E402
from nfcourse import widgets as W  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_close():
    torch.manual_seed(0)
    yield
    plt.close("all")


@pytest.fixture
def flow():
    torch.manual_seed(1)
    flow = nf.planar_flow(2, layers=3)
    with torch.no_grad():  # far from the identity, so every layer moves the points
        for p in flow.parameters():
            p.copy_(1.5 * torch.randn_like(p))
    return flow


def _points(ax) -> np.ndarray:
    return np.asarray(ax.collections[-1].get_offsets())


def _base(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


# --- stage_figure / layer_stepper ----------------------------------------------------------------


def test_stage_figure_first_and_last_stage(flow):
    z = _base(300, 5)
    ax0 = W.stage_figure(flow, 0, n=300, seed=5)
    np.testing.assert_allclose(_points(ax0), z.numpy(), atol=1e-6)
    axk = W.stage_figure(flow, 3, n=300, seed=5)
    with torch.no_grad():
        x, _ = flow.transform(z)
    np.testing.assert_allclose(_points(axk), x.numpy(), atol=1e-5)
    # the colour of a point is that of its base sample's direction, the same at every stage
    np.testing.assert_array_equal(
        ax0.collections[-1].get_facecolors(), axk.collections[-1].get_facecolors()
    )
    assert len(np.unique(ax0.collections[-1].get_facecolors(), axis=0)) == 6
    assert "k = 0" in ax0.get_title() and "Planar" in axk.get_title()
    assert ax0.get_xlim() == (-4, 4)


@pytest.mark.parametrize("k", [-1, 4, 1.5, True, "2"])
def test_stage_figure_out_of_range_k_is_a_clear_error(flow, k):
    with pytest.raises(ValueError, match=r"`k` must be an int from 0 .* K = 3"):
        W.stage_figure(flow, k, n=50)


def test_stage_figure_with_data_own_axes_and_free_bounds(flow):
    data = nf.datasets.moons().sample(200, seed=0)
    fig, ax = plt.subplots()
    out = W.stage_figure(flow, 2, n=100, bounds=None, ax=ax, data=data)
    assert out is ax and len(ax.collections) == 2  # data, then the flow's points
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    pts = np.concatenate([_points(ax), np.asarray(ax.collections[0].get_offsets())])
    assert x0 <= pts[:, 0].min() and pts[:, 0].max() <= x1
    assert y0 <= pts[:, 1].min() and pts[:, 1].max() <= y1
    with pytest.raises(TypeError, match="nfcourse.Flow"):
        W.stage_figure(torch.nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="`n` must be a positive int"):
        W.stage_figure(flow, 0, n=0)


def test_stage_figure_with_a_torch_distributions_base():
    base = torch.distributions.MultivariateNormal(torch.zeros(2), 0.5 * torch.eye(2))
    flow = nf.Flow([nf.Affine(2)], base=base)  # its base takes no generator
    first = _points(W.stage_figure(flow, 1, n=100, seed=3))
    np.testing.assert_array_equal(first, _points(W.stage_figure(flow, 1, n=100, seed=3)))


def test_layer_stepper_builds_and_redraws_on_slider_change(flow):
    before = plt.get_fignums()
    stepper = W.layer_stepper(flow, n=200)
    slider = stepper.children[0]
    assert slider is stepper.slider and (slider.min, slider.max, slider.value) == (0, 3, 0)
    first = bytes(stepper.image.value)
    assert first.startswith(b"\x89PNG") and stepper.redraws == 1
    slider.value = 3
    assert stepper.redraws == 2 and stepper.image.value != first
    assert stepper.message.value == ""
    assert plt.get_fignums() == before  # the widget never leaves pyplot figures open


def test_a_failing_redraw_is_shown_not_raised(flow):
    stepper = W.layer_stepper(flow, n=50)
    image = stepper.image.value

    def broken(ax, k):
        raise RuntimeError("boom")

    stepper._draw = broken
    stepper.slider.value = 1  # must not raise
    assert "boom" in stepper.message.value and stepper.image.value == image


# --- one planar layer ----------------------------------------------------------------------------


def _image(ax) -> np.ndarray:
    return np.asarray(ax.images[-1].get_array())


def test_planar_density_is_a_density():
    ax = W.planar_density_figure(1.0, -1.0, 1.0, -1.0, 0.0, bounds=(-7, 7), resolution=140)
    p = _image(ax)
    assert p.shape == (140, 140) and np.isfinite(p).all() and (p >= 0).all()
    assert abs(p.sum() * (14 / 140) ** 2 - 1) < 2e-3
    # u = w = (1, -1): points pushed away from the diagonal: two lobes, a valley on it
    i, j = np.unravel_index(p.argmax(), p.shape)
    assert abs(i - j) > 5 and p[70, 70] < 0.95 * p.max()


def test_planar_w_zero_is_a_translation():
    u1, u2, b = 1.0, -2.0, 0.7
    ax = W.planar_density_figure(u1, u2, 0.0, 0.0, b, resolution=80)
    shift = torch.tensor([u1, u2]) * math.tanh(b)
    points, _, _ = nf.plots.grid((-4, 4), 80, torch.float64)
    expected = torch.exp(-0.5 * ((points - shift) ** 2).sum(-1)) / (2 * math.pi)
    np.testing.assert_allclose(_image(ax).ravel(), expected.numpy(), rtol=1e-6)
    s = W.planar_summary(u1, u2, 0.0, 0.0, b)
    assert s["kind"] == "translation" and s["u_hat"] == [u1, u2]


@pytest.mark.parametrize("c", [3.0, 5.0, 300.0])
def test_planar_raw_wu_far_below_minus_one(c):
    w = (0.6, -0.8)
    u = (-c * w[0], -c * w[1])  # w.u = -c: the raw layer would fold the plane
    s = W.planar_summary(*u, *w, 0.3)
    assert s["wu"] == pytest.approx(-c) and not s["raw_invertible"]
    assert -1 < s["wu_hat"] < -0.9 and s["kind"] == "contract"
    ax = W.planar_density_figure(*u, *w, 0.3, resolution=60)
    p = _image(ax)
    assert np.isfinite(p).all() and (p >= 0).all()
    title = ax.get_title()
    assert "<= -1" in title and "w.u_hat" in title
    if c == 300.0:
        assert "clipped" in title  # the density is huge on the hyperplane


def test_planar_summary_says_what_constrain_u_does():
    s = W.planar_summary(1.0, -1.0, 1.0, -1.0, 0.0)
    assert s["raw_invertible"] and s["kind"] == "expand"
    assert s["wu_hat"] == pytest.approx(-1 + math.log1p(math.exp(2.0)))  # changed even when valid
    with pytest.raises(ValueError, match="`b` must be a finite number, got nan"):
        W.planar_density_figure(1, 1, 1, 1, float("nan"))
    with pytest.raises(ValueError, match="`u1` must be a finite number, got '1'"):
        W.planar_density_figure("1", 1, 1, 1, 0)


# --- one radial layer ----------------------------------------------------------------------------


def _value_at(ax, point, bounds=(-4, 4)) -> float:
    p = _image(ax)
    res = p.shape[0]
    i = int((point[1] - bounds[0]) / (bounds[1] - bounds[0]) * res)
    j = int((point[0] - bounds[0]) / (bounds[1] - bounds[0]) * res)
    return float(p[i, j])


def test_radial_density_is_a_density():
    ax = W.radial_density_figure(1.0, 1.0, 1.0, 1.0, bounds=(-7, 7), resolution=140)
    p = _image(ax)
    assert np.isfinite(p).all() and abs(p.sum() * (14 / 140) ** 2 - 1) < 2e-3


def test_radial_tiny_alpha_empties_a_disc_around_z0():
    ax = W.radial_density_figure(1.0, 1.0, 1e-3, 1.0, resolution=100)
    assert _value_at(ax, (1.0, 1.0)) < 1e-4  # (1 + beta/alpha)^2 = 1e6 times thinner
    assert _value_at(ax, (1.0, -0.5)) > 0.01  # outside the disc of radius ~beta
    s = W.radial_summary(1.0, 1.0, 1e-3, 1.0)
    assert s["kind"] == "expand" and s["factor_at_z0"] == pytest.approx(1001**2)


@pytest.mark.parametrize("beta", [-0.5, -3.0])
def test_radial_beta_at_or_below_minus_alpha(beta):
    ax = W.radial_density_figure(0.0, 0.0, 0.5, beta, resolution=81)  # a pixel centre at z0
    p = _image(ax)
    assert (p >= 0).all() and not np.isnan(p).any()
    assert "clipped" in ax.get_title()  # infinite density at z0
    s = W.radial_summary(0.0, 0.0, 0.5, beta)
    assert s["singular"] and s["beta_used"] == -0.5 and s["clipped"] == (beta < -0.5)
    if beta < -0.5:
        assert "drawn at beta = -alpha" in ax.get_title()


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_radial_alpha_must_be_positive(alpha):
    with pytest.raises(ValueError, match="`alpha` must be > 0"):
        W.radial_density_figure(0.0, 0.0, alpha, 1.0)


def test_radial_contracting_layer_matches_the_formula_at_z0():
    z0, alpha, beta = (0.5, 0.5), 0.2, -0.1
    ax = W.radial_density_figure(*z0, alpha, beta, resolution=168)  # z0 is a pixel centre
    base = math.exp(-0.5 * (z0[0] ** 2 + z0[1] ** 2)) / (2 * math.pi)
    assert _value_at(ax, z0) == pytest.approx(base / (1 + beta / alpha) ** 2, rel=2e-2)


# --- the explorers -------------------------------------------------------------------------------


def test_planar_explorer_redraws_and_explains():
    before = plt.get_fignums()
    ex = W.planar_explorer()
    assert list(ex.sliders) == ["u1", "u2", "w1", "w2", "b"]
    assert ex.children[1] is ex.image and ex.redraws == 1
    first, info = ex.image.value, ex.info.value
    ex.sliders["u1"].value = -4.0
    ex.sliders["u2"].value = 4.0  # w.u = -8: the raw layer would fold
    assert ex.redraws == 3 and ex.image.value != first and ex.message.value == ""
    assert ex.info.value != info and "would fold" in ex.info.value
    ex.sliders["w1"].value = 0.0
    ex.sliders["w2"].value = 0.0
    assert ex.message.value == "" and "translates" in ex.info.value
    assert plt.get_fignums() == before


def test_radial_explorer_redraws_at_extreme_values():
    ex = W.radial_explorer()
    assert list(ex.sliders) == ["z0_1", "z0_2", "alpha", "beta"]
    first = ex.image.value
    ex.sliders["alpha"].value = 10 ** ex.sliders["alpha"].min  # 0.001
    assert ex.message.value == "" and ex.image.value != first
    ex.sliders["beta"].value = -4.0  # far below -alpha
    assert ex.message.value == "" and "boundary" in ex.info.value
    assert ex.redraws == 3
