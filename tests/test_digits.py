"""The 8x8 digits: the split, dequantization, and the bits-per-dimension accounting."""

from __future__ import annotations

import math

import pytest
import torch

from nfcourse.data import digits


def test_split_sizes_values_and_reproducibility():
    data = digits.load()
    assert {k: tuple(v.shape) for k, v in data.items()} == {
        "train": (1197, 64),
        "val": (300, 64),
        "test": (300, 64),
    }
    for v in data.values():
        assert v.dtype == torch.int64 and v.min() >= 0 and v.max() == digits.LEVELS - 1
    # every image once: the three splits hold the whole data set
    everything = torch.cat(list(data.values()))
    assert torch.equal(everything.sum(0), torch.from_numpy(digits._all_images()).sum(0))
    again, other = digits.load(), digits.load(seed=1)
    assert all(torch.equal(data[k], again[k]) for k in data)
    assert not torch.equal(data["test"], other["test"])
    assert torch.equal(digits.split("val"), data["val"])


def test_dequantize_stays_in_the_pixels_cube_with_fresh_noise():
    pixels = digits.load()["test"][:50]
    g = torch.Generator().manual_seed(0)
    v1, v2 = digits.dequantize(pixels, g), digits.dequantize(pixels, g)
    for v in (v1, v2):
        assert v.dtype == torch.float32
        assert ((v >= pixels) & (v < pixels + 1)).all()
    assert (v1 - v2).abs().min() >= 0 and not torch.equal(v1, v2)
    same = digits.dequantize(pixels, torch.Generator().manual_seed(0))
    assert torch.equal(same, v1)


def test_uniform_density_gives_log2_levels_bits():
    """The uniform density on (0, 17)^D is the discrete uniform model: exactly log2 17 bits."""
    log_p_v = torch.full((5,), -64 * math.log(digits.LEVELS), dtype=torch.float64)
    assert torch.allclose(digits.bits_per_dim(log_p_v), torch.tensor(math.log2(17.0)).double())
    # the same density on the unit cube is 1 everywhere: the rescaling term gives the bits
    unit = digits.bits_per_dim_unit(torch.zeros(5, dtype=torch.float64))
    assert torch.allclose(unit, torch.tensor(math.log2(17.0)).double())


def test_bound_is_exact_for_a_density_constant_on_each_cube():
    """The histogram of independent pixels as a density p_V(v) = prod_i P_i(floor(v_i)):
    E_u[-log p_V(k + u)] is then exactly -log P(k), for every noise draw."""
    data = digits.load()
    log_probs = digits.independent_pixels(data["train"])
    exact = digits.independent_bits_per_dim(log_probs, data["test"])
    v = digits.dequantize(data["test"], torch.Generator().manual_seed(3), dtype=torch.float64)
    log_p_v = log_probs.gather(1, v.floor().long().T).T.sum(-1)  # density: cubes of volume 1
    assert torch.allclose(digits.bits_per_dim(log_p_v), exact, atol=1e-12)
    unit = digits.bits_per_dim_unit(log_p_v + 64 * math.log(17))  # density of y = v / 17
    assert torch.allclose(unit, exact, atol=1e-12)


def test_bound_is_above_the_discrete_nll_of_a_gaussian():
    """Jensen: E_u[-log p(k + u)] >= -log P(k), P(k) the Gaussian's mass on [k, k + 1)."""
    normal = torch.distributions.Normal(torch.tensor(6.0).double(), torch.tensor(2.5).double())
    k = torch.arange(17, dtype=torch.float64)
    exact = -(normal.cdf(k + 1) - normal.cdf(k)).log()
    u = (torch.arange(2000, dtype=torch.float64) + 0.5) / 2000  # midpoint rule over the cube
    bound = -normal.log_prob(k[:, None] + u).mean(-1)
    assert (bound >= exact).all()
    assert (bound - exact)[3:10].max() < 0.02  # near the mode the density varies little


def test_independent_pixels_probabilities():
    train = digits.load()["train"]
    log_probs = digits.independent_pixels(train, smoothing=0.5)
    assert log_probs.shape == (64, 17)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(64, dtype=torch.float64))
    # pixel 0 is dark in nearly every digit: its unseen levels get smoothing / (N + 17 s)
    unseen = ~torch.isin(torch.arange(17), train[:, 0])
    assert unseen.any()
    expected = math.log(0.5 / (len(train) + 17 * 0.5))
    assert torch.allclose(log_probs[0, unseen], torch.tensor(expected).double())


def test_images_unlike_the_digits():
    noise, photos = digits.noise_images(20), digits.photo_patches(20)
    for x in (noise, photos):
        assert x.shape == (20, 64) and x.dtype == torch.int64
        assert x.min() >= 0 and x.max() <= 16
    assert torch.equal(photos, digits.photo_patches(20))
    assert not torch.equal(photos, digits.photo_patches(20, seed=1))
    test = digits.load()["test"]
    assert torch.equal(digits.inverted(digits.inverted(test)), test)
    assert torch.equal(digits.inverted(test) + test, torch.full_like(test, 16))


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.zeros(3, 64), TypeError, "integer grey levels"),
        (torch.full((3, 64), 17), ValueError, r"0, \.\.\., 16"),
        (torch.full((3, 64), -1), ValueError, r"0, \.\.\., 16"),
        ([[1, 2]], TypeError, "must be a torch.Tensor"),
    ],
)
def test_bad_pixels_are_clear_errors(bad, error, match):
    with pytest.raises(error, match=match):
        digits.dequantize(bad)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(KeyError, match="split"):
        digits.split("training")
    with pytest.raises(ValueError, match="`seed` must be a non-negative integer"):
        digits.load(seed=-1)
    with pytest.raises(ValueError, match="`levels`"):
        digits.bits_per_dim_unit(torch.zeros(2), levels=1)


def test_benchmark_section_renders_and_judges_the_targets():
    """benchmarks/digits.py's page section, from made-up results (no training here)."""
    import sys
    from dataclasses import asdict
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import digits as bench

    def rows(model, bits, extra=True):
        more = {"steps": 100, "params": 1000, "train_s": 1.0} if extra else {}
        return [
            {"model": model, "seed": s, "bits": b, "se_test": 0.01, **more}
            for s, b in enumerate(bits)
        ]

    results = {
        "meta": {"date": "2026-12-02", "machine": "test", "load": "0"},
        "config": asdict(bench.DigitsConfig()),
        "rows": rows("independent pixels", [2.43], extra=False)
        + rows("Gaussian", [2.94, 2.95, 2.93], extra=False)
        + rows(bench.IMAGE_FLOW, [2.10, 2.12, 2.14])
        + rows("nfcourse MAF", [2.13, 2.40, 2.45])  # overlaps the image flow's seeds
        + rows("zuko MAF", [2.30, 2.31, 2.32])
        + rows("zuko NSF", [2.00, 2.01, 2.02]),
    }
    text = "\n".join(bench.markdown(results))
    assert "| nfcourse image flow | 2.120 | 2.100 - 2.140 |" in text
    assert "beats independent pixels by more than the seed-to-seed spread: met" in text
    assert "beats Gaussian by more than the seed-to-seed spread: met" in text
    assert "beats nfcourse MAF by more than the seed-to-seed spread: not met" in text
    assert "no worse than zuko MAF at equal training time: met" in text
    assert "against zuko NSF at equal training time: the image flow is worse by 0.110" in text
