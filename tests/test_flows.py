"""The ready-made flows, and a short end-to-end fit on moons."""

from __future__ import annotations

import pytest
import torch
from registry import FLOWS

import nfcourse as nf


@pytest.mark.parametrize("name", list(FLOWS))
@pytest.mark.parametrize("dim", [2, 4])
def test_builders_give_working_flows(name, dim):
    torch.manual_seed(0)
    flow = FLOWS[name](dim).double()
    x, log_q = flow.sample_and_log_prob(64)
    assert x.shape == (64, dim) and log_q.shape == (64,)
    # the density of a sample, through the inverses, agrees with the forward path
    assert torch.allclose(flow.log_prob(x), log_q, atol=1e-8)
    stages = flow.stages(10)
    assert len(stages) == len(flow.transform) + 1 and stages[-1].shape == (10, dim)


def test_stacks_alternate_which_coordinates_condition():
    masks = [layer.mask.tolist() for layer in nf.realnvp(2, layers=3).transform]
    assert masks == [[True, False], [False, True], [True, False]]
    kinds = [type(layer).__name__ for layer in nf.maf(3, layers=2).transform]
    assert kinds == ["MAF", "Reverse", "MAF"]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_depth_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="`layers` must be a positive int"):
        nf.realnvp(2, layers=bad)


def test_short_fit_on_moons_reduces_held_out_nll():
    torch.manual_seed(0)
    data = nf.datasets.moons(noise=0.05)
    train, test = data.sample(2000, seed=1), data.sample(2000, seed=2)
    flow = nf.realnvp(2, layers=4, hidden=(32, 32))
    before = nf.nll(flow, test)
    nf.fit(flow, train, steps=300, batch_size=256, lr=3e-3, progress=False, seed=0)
    after = nf.nll(flow, test)
    # a Gaussian-like start scores about 2.5 nats; the best possible is the entropy, 0.29
    assert after < before - 0.8, (before, after)
    assert after > data.entropy() - 0.05  # no model beats the true density on fresh data


def test_a_torch_distribution_as_base_samples_reproducibly_with_a_generator():
    base = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    flow = nf.Flow([nf.Affine(2)], base=base)
    state = torch.get_rng_state()
    a = flow.sample(5, generator=torch.Generator().manual_seed(3))
    b = flow.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)
    assert len(flow.stages(7, generator=torch.Generator().manual_seed(1))) == 2
