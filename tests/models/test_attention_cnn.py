import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers.attention_conv import SpatialAttentionConv2d
from archzoo.layers.se import SqueezeExcitation
from archzoo.models.attention_cnn import AttentionCNN, attention_cnn
from archzoo.registry import create_model, list_models


def test_shapes():
    model = attention_cnn(num_classes=10, in_channels=1).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        logits, feats, maps, gates = model(x), model.forward_features(x), model.feature_maps(x), model.attention_maps(x)
    assert logits.shape == (2, 10) and feats.shape == (2, 128, 7, 7)
    assert [(n, t.shape[1], t.shape[-1]) for n, t in maps] == [
        ("stem", 32, 28),
        ("stage1", 32, 28),
        ("stage2", 64, 14),
        ("stage3", 128, 7),
    ]
    torch.testing.assert_close(maps[-1][1], feats)
    assert [(n, tuple(g.shape)) for n, g in gates] == [
        ("stage1", (2, 1, 28, 28)),
        ("stage2", (2, 1, 14, 14)),
        ("stage3", (2, 1, 7, 7)),
    ]
    assert all(((g > 0) & (g < 1)).all() for _, g in gates)


def test_uses_both_gates():
    model = attention_cnn()
    assert sum(isinstance(m, SpatialAttentionConv2d) for m in model.modules()) == 3
    assert sum(isinstance(m, SqueezeExcitation) for m in model.modules()) == 3
    assert not any(isinstance(m, SqueezeExcitation) for m in attention_cnn(use_se=False).modules())


def test_backward_finite_grads():
    torch.manual_seed(0)
    model = attention_cnn(num_classes=10, in_channels=1)
    nn.functional.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([3, 9])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_head_stages_and_registry():
    model = attention_cnn(num_classes=10)
    assert model.classifier_name == "classifier" and model.get_classifier() is model.classifier
    assert len(model.stages) == 3
    model.reset_classifier(2)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 2)
    assert "attention_cnn" in list_models()
    assert create_model("attention_cnn", num_classes=4, in_channels=1)(torch.randn(2, 1, 28, 28)).shape == (2, 4)
    with pytest.raises(UserError):
        AttentionCNN(widths=())
