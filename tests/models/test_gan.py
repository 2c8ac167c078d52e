"""Tests for archzoo.models.gan: generator/discriminator shapes, sampling range, conditioning, critic norms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.models.gan import DCGAN, MLPGAN, DCGANGenerator, num_upsamplings
from archzoo.registry import create_model


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("gan_mlp", {}),
        ("dcgan", {"base_channels": 8}),
        ("dcgan", {"base_channels": 8, "upsample": "nearest"}),
        ("cgan", {"base_channels": 8}),
        ("cgan", {"arch": "mlp"}),
        ("wgan_gp", {"base_channels": 8}),
    ],
)
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_pair_shapes_and_sample_range(name: str, kwargs: dict, channels: int, size: int) -> None:
    m = create_model(name, in_channels=channels, image_size=size, **kwargs)
    assert isinstance(m.generator, nn.Module) and isinstance(m.discriminator, nn.Module)
    labels = torch.tensor([0, 3, 9]) if m.is_conditional else None
    z = torch.randn(3, m.latent_dim)
    fake = m(z, labels)
    assert fake.shape == (3, channels, size, size)
    assert m.discriminate(fake, labels).shape == (3,)
    s = m.sample(4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, channels, size, size)
    assert m.data_range == (-1.0, 1.0) and -1.0 <= float(s.min()) and float(s.max()) <= 1.0


def test_conditioning_flags_and_labels() -> None:
    c = create_model("cgan", num_classes=10, base_channels=8)
    assert c.is_conditional and c.num_classes == 10
    assert c.default_labels(12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    c.eval()
    z = torch.randn(1, c.latent_dim).expand(2, -1)
    with torch.no_grad():
        a = c(z, torch.tensor([1, 2]))
    assert not torch.allclose(a[0], a[1])  # the label changes the image for the same z
    u = create_model("dcgan", base_channels=8)
    assert not u.is_conditional and u.num_classes == 0
    g = torch.Generator().manual_seed(5)
    u.eval()
    s1 = u.sample(2, labels=torch.tensor([1, 2]), generator=g)  # labels are ignored when unconditional
    s2 = u.sample(2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(s1, s2)


def test_dcgan_layout_and_init() -> None:
    assert num_upsamplings(28) == 2 and num_upsamplings(32) == 3 and num_upsamplings(8) == 1
    with pytest.raises(UserError):
        num_upsamplings(6)
    g = DCGANGenerator(latent_dim=10, out_channels=1, image_size=28, base_channels=16)
    assert (g.c0, g.s0) == (32, 7)  # z -> 32 x 7 x 7 -> 16 x 14 x 14 -> 1 x 28 x 28
    m = DCGAN(1, 28, latent_dim=10, base_channels=16)
    w = torch.cat([p.detach().flatten() for n, p in m.named_parameters() if n.endswith("weight") and p.dim() > 1])
    assert abs(float(w.std()) - 0.02) < 0.003  # N(0, 0.02) initialisation


def test_wgan_critic_has_no_batch_norm() -> None:
    m = create_model("wgan_gp", base_channels=8)
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in m.discriminator.modules())
    assert any(isinstance(mod, nn.GroupNorm) for mod in m.discriminator.modules())
    assert any(
        isinstance(mod, nn.BatchNorm2d) for mod in create_model("dcgan", base_channels=8).discriminator.modules()
    )


def test_discriminator_features_feed_the_head() -> None:
    m = MLPGAN(1, 8, latent_dim=4, g_hidden=(16,), d_hidden=(12,)).eval()
    x = torch.rand(5, 1, 8, 8)
    h = m.discriminator.features(x)
    assert h.shape == (5, 12)
    torch.testing.assert_close(m.discriminator.head(h).squeeze(1), m.discriminate(x))


def test_projection_discriminator_starts_unsaturated() -> None:
    """The class projection starts on the head's scale, so initial logits are O(1) as in the unconditional D."""
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    y = torch.randint(0, 10, (64,))
    cond = create_model("cgan").discriminator(x, y).detach()
    plain = create_model("dcgan").discriminator(x).detach()
    assert cond.abs().mean() < 3 * plain.abs().mean() + 1
