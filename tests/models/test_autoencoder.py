"""Tests for archzoo.models.autoencoder: shapes, output ranges, the denoising corruption, size checks."""

from __future__ import annotations

import pytest
import torch

from archzoo.errors import UserError
from archzoo.models.autoencoder import ConvAutoencoder, MLPAutoencoder
from archzoo.registry import create_model


@pytest.mark.parametrize("name", ["ae_mlp", "ae_conv"])
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_shapes_and_sigmoid_range(name: str, channels: int, size: int) -> None:
    m = create_model(name, in_channels=channels, image_size=size, latent_dim=8)
    x = torch.rand(3, channels, size, size)
    out = m(x)
    assert out.shape == x.shape
    assert m.encode(x).shape == (3, 8)
    assert m.forward_features(x).shape == (3, 8)
    assert 0.0 <= float(out.detach().min()) and float(out.detach().max()) <= 1.0
    assert m.data_range == (0.0, 1.0)
    out.mean().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_tanh_and_identity_outputs_declare_their_range() -> None:
    m = MLPAutoencoder(1, 8, hidden_dims=(16,), latent_dim=2, output="tanh")
    y = m(torch.rand(4, 1, 8, 8) * 50).detach()
    assert m.data_range == (-1.0, 1.0) and float(y.abs().max()) <= 1.0
    assert MLPAutoencoder(1, 8, hidden_dims=(16,), latent_dim=2, output="identity").data_range is None
    with pytest.raises(UserError, match="Unknown output"):
        MLPAutoencoder(output="softmax")


def test_denoising_corrupts_only_in_training() -> None:
    torch.manual_seed(0)
    m = ConvAutoencoder(1, 8, channels=(4, 8), latent_dim=4, noise_std=0.5)
    x = torch.rand(2, 1, 8, 8)
    m.train()
    noisy_a, noisy_b = m(x), m(x)
    assert not torch.allclose(noisy_a, noisy_b)  # fresh noise each call
    m.eval()
    assert torch.equal(m(x), m.reconstruct(x))  # no corruption in eval
    plain = ConvAutoencoder(1, 8, channels=(4, 8), latent_dim=4, noise_std=0.0)
    assert torch.equal(plain.corrupt(x), x)


def test_conv_autoencoder_rejects_sizes_that_do_not_halve() -> None:
    with pytest.raises(UserError, match="divisible by 4"):
        ConvAutoencoder(1, 30, channels=(4, 8))
