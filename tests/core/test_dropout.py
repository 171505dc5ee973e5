"""The transformers' dropout: the distribution nn.Dropout has, from a quarter of the random numbers."""

from __future__ import annotations

import pytest
import torch

from genrec.model.layers import Dropout


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_each_element_is_kept_with_probability_one_minus_p_and_rescaled(p: float) -> None:
    torch.manual_seed(0)
    drop = Dropout(p).train()
    y = drop(torch.ones(4, 100_000))
    kept = y != 0
    assert torch.allclose(y[kept], torch.tensor(1 / (1 - p)))
    # every one of the four 16-bit draws a random number gives is uniform (a biased lane would show)
    for lane in range(4):
        assert kept.flatten()[lane::4].float().mean().item() == pytest.approx(1 - p, abs=0.005)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)  # unbiased in expectation


def test_gradients_flow_through_the_kept_elements_only() -> None:
    drop = Dropout(0.5).train()
    x = torch.randn(64, 32, requires_grad=True)
    y = drop(x)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * 2.0)


def test_the_same_seed_draws_the_same_masks_and_eval_passes_through() -> None:
    drop = Dropout(0.2).train()
    x = torch.randn(8, 50)
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    assert torch.equal(a, drop(x))
    assert not torch.equal(a, drop(x))
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
