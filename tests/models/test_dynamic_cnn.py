import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers.dynamic_conv import DynamicConv2d
from archzoo.models.dynamic_cnn import DynamicCNN, dynamic_cnn
from archzoo.registry import create_model, list_models


def test_shapes():
    model = dynamic_cnn(num_classes=10, in_channels=1).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        logits, feats, maps = model(x), model.forward_features(x), model.feature_maps(x)
    assert logits.shape == (2, 10) and feats.shape == (2, 128, 7, 7)
    assert [(n, t.shape[1], t.shape[-1]) for n, t in maps] == [
        ("stem", 32, 28),
        ("stage1", 32, 28),
        ("stage2", 64, 14),
        ("stage3", 128, 7),
    ]
    torch.testing.assert_close(maps[-1][1], feats)
    # each sample's logits do not depend on the rest of the batch
    torch.testing.assert_close(model(x[:1]), logits[:1], atol=1e-5, rtol=1e-5)


def test_uses_dynamic_convolutions_and_temperature():
    model = dynamic_cnn(num_kernels=3, temperature=30.0)
    convs = [m for m in model.modules() if isinstance(m, DynamicConv2d)]
    assert len(convs) == 6 and all(c.num_kernels == 3 and c.attention.temperature == 30.0 for c in convs)
    model.set_temperature(1.0)
    assert all(c.attention.temperature == 1.0 for c in convs)


def test_backward_finite_grads():
    torch.manual_seed(0)
    model = dynamic_cnn(num_classes=10, in_channels=1)
    nn.functional.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([0, 1])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_head_stages_and_registry():
    model = dynamic_cnn(num_classes=10, in_channels=3)
    assert model.classifier_name == "classifier" and model.get_classifier() is model.classifier
    assert len(model.stages) == 3 and all(isinstance(s, nn.Module) for s in model.stages)
    model.reset_classifier(2)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 2)
    assert "dynamic_cnn" in list_models()
    assert create_model("dynamic_cnn", num_classes=4, in_channels=1)(torch.randn(2, 1, 28, 28)).shape == (2, 4)
    with pytest.raises(UserError):
        DynamicCNN(widths=())
