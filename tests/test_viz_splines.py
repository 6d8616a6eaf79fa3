"""The spline pictures of lesson 06 and the explorer behind its sliders.

An error inside an ipywidgets callback is only shown in the widget (a headless run of
the notebook stays green), so the pure functions are called directly here, with the
extreme values the sliders reach.
"""

from __future__ import annotations

import itertools
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from nfcourse.layers.spline import MIN_BIN, MIN_DERIVATIVE, knots  # noqa: E402
from nfcourse.viz import splines as S  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def inner_raw(d: float) -> float:
    """The raw number whose inner derivative is ``d``."""
    shift = math.log(math.expm1(1 - MIN_DERIVATIVE))
    return math.log(math.expm1(d - MIN_DERIVATIVE)) - shift


BIMODAL = [0, 0, 0, 0, 0.3, -0.5, -0.5, 0.3, inner_raw(0.4), inner_raw(2.5), inner_raw(0.4)]

# what the sliders can reach: every slider at -4 or at 4, one-hot softmaxes, alternating signs
EXTREMES = [
    [-4.0] * 11,
    [4.0] * 11,
    [4, -4, -4, -4, -4, -4, -4, 4, -4, 4, -4],
    [-4, 4, -4, 4, 4, -4, 4, -4, 4, -4, 4],
    [4, -4, -4, -4, -4, -4, -4, 4, -4, -4, -4],
]


def test_curves_go_through_the_knots_with_their_derivatives():
    c = S.spline_curves(BIMODAL, bound=3.0, resolution=1201)
    xs, ys, ds = (t.numpy() for t in knots(torch.tensor(BIMODAL, dtype=torch.float64), 3.0))
    np.testing.assert_allclose(c["xs"], xs)
    np.testing.assert_allclose(np.interp(xs, c["x"], c["y"]), ys, atol=1e-3)
    at = S.spline_curves(BIMODAL, bound=3.0, margin=1.0, resolution=9)  # grid -4, -3, ..., 4
    np.testing.assert_allclose(at["dydx"][[0, 1, -2, -1]], 1.0, atol=1e-12)  # tails and ends
    assert (np.diff(c["y"]) > 0).all()
    tails = np.abs(c["x"]) > 3.0
    np.testing.assert_allclose(c["y"][tails], c["x"][tails])


def test_the_density_is_the_pushforward_of_a_gaussian():
    c = S.spline_curves(BIMODAL, bound=3.0, margin=4.0, resolution=4001)
    mass = ((c["density"][1:] + c["density"][:-1]) / 2 * np.diff(c["grid"])).sum()
    assert abs(mass - 1) < 1e-4
    # against a histogram of g(z): the formula and the samples agree
    z = torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    from nfcourse.layers.spline import spline

    y, _ = spline(z, torch.tensor(BIMODAL, dtype=torch.float64).expand(len(z), -1), 3.0)
    hist, edges = np.histogram(y.numpy(), bins=40, range=(-3, 3))
    steps = (c["density"][1:] + c["density"][:-1]) / 2 * np.diff(c["grid"])
    cdf = np.concatenate([[0.0], np.cumsum(steps)])  # of the formula, by the trapezoid rule
    expected = np.diff(np.interp(edges, c["grid"], cdf)) * len(z)
    assert (np.abs(hist - expected) < 5 * np.sqrt(expected) + 1e-3 * expected).all()


def test_summary_of_the_identity_and_of_a_bimodal_spline():
    identity = S.spline_summary([0.0] * 11)
    assert identity["min_slope"] == pytest.approx(1.0)
    assert identity["max_slope"] == pytest.approx(1.0)
    assert identity["ds"] == pytest.approx([1.0] * 5) and not identity["at_minimum"]
    s = S.spline_summary(BIMODAL)
    assert s["bins"] == 4 and s["increasing"] and abs(s["mass"] - 1) < 1e-4
    assert s["min_slope"] < 0.4 < 2.5 <= s["max_slope"] + 1e-9


@pytest.mark.parametrize("raw", EXTREMES, ids=["all -4", "all 4", "one-hot", "alternating",
                                               "one-hot, flat inner derivatives"])
def test_extreme_slider_values_give_a_valid_spline_and_a_picture(raw):
    c = S.spline_curves(raw)
    for key in ("y", "dydx", "density"):
        assert np.isfinite(c[key]).all(), key
    assert (np.diff(c["y"]) > 0).all()
    assert (np.diff(c["xs"]) >= 2 * 3.0 * MIN_BIN * (1 - 1e-9)).all()
    assert (c["ds"] >= MIN_DERIVATIVE).all()
    s = S.spline_summary(raw)
    assert s["increasing"] and s["min_slope"] > 0
    fig = S.spline_figure(raw, samples=2000)
    assert len(fig.axes) == 3
    assert len(fig.axes[0].lines) >= 3 and fig.axes[2].patches  # curves and the histogram


def test_one_hot_softmax_keeps_every_bin_open():
    s = S.spline_summary(EXTREMES[2])
    assert s["at_minimum"] and MIN_BIN * (1 - 1e-9) <= s["smallest_bin"] < 2 * MIN_BIN
    assert "close to its minimum share" in S._info(s)


def test_every_corner_of_a_two_bin_spline():
    """K = 2: five sliders, all 32 corners of [-4, 4]^5."""
    for raw in itertools.product((-4.0, 4.0), repeat=5):
        c = S.spline_curves(raw, resolution=401)
        assert np.isfinite(c["density"]).all() and (np.diff(c["y"]) > 0).all()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([0.0] * 4, "3K - 1 numbers"),
        ([[0.0] * 5], "3K - 1 numbers"),
        ([0.0, 0.0], "3K - 1 numbers"),
        ("abc", "3K - 1 numbers"),
        ([0.0, 0.0, math.nan, 0.0, 0.0], "finite numbers"),
    ],
)
def test_bad_raw_numbers_are_clear_errors(raw, message):
    with pytest.raises(ValueError, match=message):
        S.spline_curves(raw)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="`bound` must be a positive finite number"):
        S.spline_curves([0.0] * 5, bound=0.0)
    with pytest.raises(ValueError, match="`bins`"):
        S.spline_explorer(bins=1)
    with pytest.raises(ValueError, match="`start` must hold 3 \\* bins - 1 = 11 numbers"):
        S.spline_explorer(bins=4, start=[0.0] * 8)


def test_the_explorer_redraws_when_a_slider_moves_to_its_ends():
    w = S.spline_explorer(start=BIMODAL, samples=500)
    assert list(w.sliders) == ["w1", "w2", "w3", "w4", "h1", "h2", "h3", "h4", "d1", "d2", "d3"]
    assert w.redraws == 1 and w.message.value == "" and w.image.value[:4] == b"\x89PNG"
    assert w.sliders["d2"].value == pytest.approx(BIMODAL[9])
    assert "derivatives at the knots" in w.info.value
    for name, value in [("w1", -4.0), ("h2", 4.0), ("d3", -4.0), ("d1", 4.0)]:
        w.sliders[name].value = value  # one of each kind, to the ends of its range
        assert w.message.value == "", (name, value, w.message.value)
    assert w.redraws == 5 and "derivatives at the knots" in w.info.value


def test_the_explorer_starts_at_the_identity_and_shows_a_failed_redraw():
    w = S.spline_explorer(bins=3, samples=0)
    assert [s.value for s in w.sliders.values()] == [0.0] * 8
    assert "from 1 to 1" in w.info.value
    w.bound = -1.0  # a broken state: the next redraw fails, and says so in the widget
    w.sliders["w1"].value = 1.0
    assert "bound" in w.message.value and w.redraws == 1
