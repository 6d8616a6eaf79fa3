"""Tests of the 2-D toy datasets: sampling, reproducibility, densities and entropies."""

import math

import pytest
import torch

from nfcourse import datasets
from nfcourse.validate import UnknownNameError

ALL = datasets.names()
WITH_DENSITY = datasets.names(with_density=True)
WITHOUT_DENSITY = [n for n in ALL if n not in WITH_DENSITY]


def test_registry_lists_every_dataset():
    assert ALL == [
        "moons",
        "eight_gaussians",
        "checkerboard",
        "gaussian_mixture",
        "rings",
        "pinwheel",
        "two_spirals",
    ]
    assert WITHOUT_DENSITY == ["pinwheel", "two_spirals"]
    for name in ALL:
        assert datasets.get(name).name == name
    assert datasets.get("moons", noise=0.1).noise == 0.1


# --- sampling --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_sample_shape_dtype_and_range(name):
    ds = datasets.get(name)
    x = ds.sample(5000, seed=0)
    assert x.shape == (5000, 2) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert ds.sample(7, seed=0, dtype=torch.float64).dtype == torch.float64
    assert ds.sample(0, seed=0).shape == (0, 2)
    # centered near the origin, inside roughly [-4, 4]^2 (the plotting bounds)
    assert x.mean(0).abs().max() < 0.6
    (a1, b1), (a2, b2) = ds.bounds
    inside = (x[:, 0] > a1) & (x[:, 0] < b1) & (x[:, 1] > a2) & (x[:, 1] < b2)
    assert inside.double().mean() > 0.99


@pytest.mark.parametrize("name", ALL)
def test_seed_is_reproducible_and_leaves_the_global_rng_alone(name):
    ds = datasets.get(name)
    state = torch.get_rng_state()
    a = ds.sample(100, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, ds.sample(100, seed=1))
    assert not torch.equal(a, ds.sample(100, seed=2))
    assert torch.equal(a, ds.sample(100, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("name", ALL)
def test_global_rng_is_used_without_seed(name):
    ds = datasets.get(name)
    torch.manual_seed(0)
    a = ds.sample(50)
    b = ds.sample(50)  # the global generator moved on
    torch.manual_seed(0)
    assert torch.equal(a, ds.sample(50))
    assert not torch.equal(a, b)


def test_noiseless_samples_lie_on_the_stated_curves():
    """With (almost) no noise the samplers draw the curves their docstrings define."""
    y = datasets.moons(noise=1e-9).sample(2000, seed=0, dtype=torch.float64) + torch.tensor(
        [0.5, 0.25], dtype=torch.float64
    )
    outer = ((y.norm(dim=-1) - 1).abs() < 1e-6) & (y[:, 1] >= -1e-6)
    centered = y - torch.tensor([1.0, 0.5], dtype=torch.float64)
    inner = ((centered.norm(dim=-1) - 1).abs() < 1e-6) & (centered[:, 1] <= 1e-6)
    assert (outer | inner).all() and 0.45 < outer.double().mean() < 0.55

    x = datasets.rings(noise=1e-9).sample(2000, seed=0, dtype=torch.float64)
    k = x.norm(dim=-1) / 0.75
    assert ((k - k.round()).abs() < 1e-6).all() and set(k.round().tolist()) == {1, 2, 3, 4}

    x = datasets.two_spirals(noise=1e-9).sample(2000, seed=0, dtype=torch.float64)
    t = x.norm(dim=-1) * 3 * math.pi / 3.5  # r = 3.5 t / (3 pi)
    direction = x / x.norm(dim=-1, keepdim=True)
    along = (direction * torch.stack([t.cos(), t.sin()], -1)).sum(-1)  # +1 or -1
    assert ((along.abs() - 1).abs() < 1e-6).all() and 0.45 < (along > 0).double().mean() < 0.55
    assert t.max() <= 3 * math.pi + 1e-6


def test_a_generator_is_advanced():
    g = torch.Generator().manual_seed(0)
    ds = datasets.moons()
    assert not torch.equal(ds.sample(10, generator=g), ds.sample(10, generator=g))


# --- densities and entropies -----------------------------------------------------------


@pytest.mark.parametrize(
    "ds",
    [datasets.get(n) for n in WITH_DENSITY] + [datasets.rings(noise=0.2)],
    ids=repr,
)
def test_sampler_and_density_agree(ds):
    """Mean -log p of fresh samples = the entropy integrated from the density alone.

    If the formula q differs from the sampler's density p, the sample mean estimates
    H(p) + KL(p || q) while the grid entropy is H(q): they disagree.
    """
    x = ds.sample(20_000, seed=12345, dtype=torch.float64)
    nll = -ds.log_prob(x)
    se = nll.std().item() / math.sqrt(len(nll))
    assert abs(nll.mean().item() - ds.entropy()) < 4 * se + 1e-9


@pytest.mark.parametrize(
    "ds, box, step",
    [
        (datasets.moons(), ((-2.5, 2.5), (-1.5, 1.5)), 0.02),
        (datasets.eight_gaussians(), ((-7.0, 7.0), (-7.0, 7.0)), 0.05),
        (datasets.gaussian_mixture(), ((-12.0, 12.0), (-12.0, 12.0)), 0.05),
        (datasets.rings(), ((-4.5, 4.5), (-4.5, 4.5)), 0.02),
    ],
    ids=repr,
)
def test_density_integrates_to_one(ds, box, step):
    (a1, b1), (a2, b2) = box
    x1 = torch.arange(a1, b1 + step / 2, step, dtype=torch.float64)
    x2 = torch.arange(a2, b2 + step / 2, step, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(x1, x2, indexing="ij"), -1)
    p = ds.log_prob(grid).exp()
    mass = torch.trapezoid(torch.trapezoid(p, x2, dim=1), x1).item()
    assert mass == pytest.approx(1.0, abs=1e-6)


def test_checkerboard_density_and_entropy():
    ds = datasets.checkerboard()
    assert ds.entropy() == math.log(32)
    # black squares: (i + j) even, square (i, j) = [-4 + 2i, -2 + 2i] x [-4 + 2j, -2 + 2j]
    black = torch.tensor([[-3.0, -3.0], [-1.0, -1.0], [1.0, -3.0], [3.5, 3.5], [-3.9, 0.1]])
    white = torch.tensor([[-1.0, -3.0], [-3.0, -1.0], [0.5, -0.5], [3.5, 0.5]])
    outside = torch.tensor([[4.5, 0.0], [-3.0, -4.1], [100.0, 100.0]])
    assert torch.all(ds.log_prob(black) == -math.log(32))
    assert torch.all(ds.log_prob(white) == -math.inf)
    assert torch.all(ds.log_prob(outside) == -math.inf)
    # the board's outer edge counts (float32 rounding can put samples there)
    assert ds.log_prob(torch.tensor([4.0, 4.0])) == -math.log(32)
    # mass 1: the midpoint rule is exact on a grid aligned with the squares
    step = 0.1
    c = torch.arange(-5 + step / 2, 5, step, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(c, c, indexing="ij"), -1)
    assert ds.log_prob(grid).exp().sum().item() * step**2 == pytest.approx(1.0, abs=1e-9)


def _moons_midpoint_log_prob(x, noise, nodes=20_000):
    """An independent quadrature: the midpoint rule in t with many nodes per arc."""
    t = (torch.arange(nodes, dtype=torch.float64) + 0.5) * math.pi / nodes
    outer = torch.stack([t.cos(), t.sin()], -1)
    inner = torch.stack([1 - t.cos(), 0.5 - t.sin()], -1)
    centers = torch.cat([outer, inner]) - torch.tensor([0.5, 0.25], dtype=torch.float64)
    log_w = math.log(0.5 / nodes)  # arc 1/2, t-density 1/pi times the step pi / nodes
    sq = (x[:, None, :] - centers).pow(2).sum(-1)
    log_normal = -0.5 * sq / noise**2 - math.log(2 * math.pi * noise**2)
    return torch.logsumexp(log_w + log_normal, -1)


def test_moons_quadrature_matches_an_independent_one():
    ds = datasets.moons(noise=0.05)
    x = torch.cat(
        [
            ds.sample(150, seed=0, dtype=torch.float64),  # on the arcs
            datasets.moons(noise=0.15).sample(50, seed=1, dtype=torch.float64),  # around
        ]
    )
    assert (ds.log_prob(x) - _moons_midpoint_log_prob(x, 0.05)).abs().max() < 1e-4


def test_moons_density_needs_some_noise():
    ds = datasets.moons(noise=1e-4)
    assert ds.sample(10, seed=0).shape == (10, 2)  # sampling works at any noise
    with pytest.raises(ValueError, match=r"noise >= 0.001"):
        ds.log_prob(torch.zeros(1, 2))


def test_moons_entropy_reference_value():
    assert datasets.moons(noise=0.05).entropy() == pytest.approx(0.2892, abs=1e-4)


def test_rings_bessel_density_matches_an_angular_quadrature():
    ds = datasets.rings(noise=0.1)
    x = torch.cat([ds.sample(100, seed=0, dtype=torch.float64), torch.zeros(1, 2).double()])
    theta = torch.arange(2000, dtype=torch.float64) * 2 * math.pi / 2000  # periodic: exact-ish
    radii = 0.75 * torch.arange(1, 5, dtype=torch.float64)
    centers = (radii[:, None, None] * torch.stack([theta.cos(), theta.sin()], -1)).reshape(-1, 2)
    sq = (x[:, None, :] - centers).pow(2).sum(-1)
    ref = torch.logsumexp(-0.5 * sq / 0.01, -1) - math.log(4 * 2000 * 2 * math.pi * 0.01)
    assert (ds.log_prob(x) - ref).abs().max() < 1e-9


@pytest.mark.parametrize("name", WITH_DENSITY)
def test_log_prob_shape_and_dtype(name):
    ds = datasets.get(name)
    x = ds.sample(12, seed=0).reshape(3, 4, 2)
    lp = ds.log_prob(x)
    assert lp.shape == (3, 4) and lp.dtype == torch.float32
    assert ds.log_prob(x[0, 0]).shape == ()
    assert torch.allclose(lp.double(), ds.log_prob(x.double()), atol=1e-4)


def test_eight_gaussians_centers_are_where_its_samples_cluster():
    ds = datasets.eight_gaussians(std=0.05)
    centers = ds.centers
    assert centers.shape == (8, 2)
    assert torch.allclose(centers.norm(dim=-1), torch.full((8,), ds.radius, dtype=centers.dtype))
    x = ds.sample(4000, seed=0).double()
    nearest = (x[:, None] - centers).norm(dim=-1).min(-1).values
    assert nearest.max() < 10 * ds.std  # every sample next to one of the centers
    centers += 1.0  # a copy: the data set is unchanged
    assert torch.allclose(ds.centers.norm(dim=-1), torch.full((8,), ds.radius, dtype=torch.float64))


def test_entropy_is_cached():
    ds = datasets.eight_gaussians()
    assert ds.entropy() is ds.entropy()


@pytest.mark.parametrize("name", WITHOUT_DENSITY)
def test_datasets_without_density_say_so(name):
    ds = datasets.get(name)
    assert ds.entropy() is None
    with pytest.raises(NotImplementedError, match="no closed-form density") as info:
        ds.log_prob(torch.zeros(3, 2))
    assert "moons" in str(info.value) and "checkerboard" in str(info.value)


# --- bad inputs ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [-1, 2.5, True, "10", None])
def test_bad_n(n):
    with pytest.raises(ValueError, match="`n`.*non-negative int"):
        datasets.moons().sample(n)


@pytest.mark.parametrize("factory", [datasets.moons, datasets.rings, datasets.two_spirals])
@pytest.mark.parametrize("noise", [0, -0.1, float("nan"), float("inf"), "0.1", None])
def test_bad_noise(factory, noise):
    with pytest.raises(ValueError, match="`noise` must be a positive finite number"):
        factory(noise=noise)


def test_bad_other_arguments():
    with pytest.raises(ValueError, match="`std`"):
        datasets.eight_gaussians(std=0.0)
    with pytest.raises(ValueError, match="`arms`"):
        datasets.pinwheel(arms=0)
    ds = datasets.moons()
    with pytest.raises(ValueError, match="`seed` must be a non-negative int"):
        ds.sample(3, seed=-1)
    with pytest.raises(ValueError, match="either `seed` or `generator`"):
        ds.sample(3, seed=0, generator=torch.Generator())
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator"):
        ds.sample(3, generator=0)
    with pytest.raises(TypeError, match="`dtype` must be a floating-point"):
        ds.sample(3, dtype=torch.int64)
    with pytest.raises(TypeError):
        datasets.get("moons", nosie=0.1)


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError) as info:
        datasets.get("moon")
    assert isinstance(info.value, UnknownNameError)
    message = str(info.value)
    assert "Did you mean 'moons'?" in message
    assert all(name in message for name in ALL)


def test_bad_points():
    ds = datasets.moons()
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\).*got shape \(10, 3\)"):
        ds.log_prob(torch.zeros(10, 3))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        ds.log_prob([[0.0, 0.0]])
    with pytest.raises(TypeError, match="floating-point"):
        ds.log_prob(torch.zeros(4, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN or infinite"):
        ds.log_prob(torch.tensor([[0.0, float("nan")]]))
