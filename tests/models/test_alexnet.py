import pytest
import torch
import torchvision
from _parity import assert_parity, fill_random_, n_params  # noqa: F401
from torch import nn

from archzoo.errors import UserError
from archzoo.models.alexnet import AlexNet, alexnet
from archzoo.registry import create_model, list_models


def test_parity_with_torchvision():
    # 63 px is the smallest input the 11x11 stride-4 stem and three pools allow
    assert_parity(
        lambda: alexnet(num_classes=1000, in_channels=3), lambda: torchvision.models.alexnet(weights=None), 64
    )


@pytest.mark.parametrize("side,last", [(28, 2), (32, 3)])
def test_small_stem_shapes(side, last):
    model = alexnet(num_classes=10, in_channels=1, stem="small").eval()
    x = torch.randn(2, 1, side, side)
    with torch.no_grad():
        logits, feats, maps = model(x), model.forward_features(x), model.feature_maps(x)
    assert logits.shape == (2, 10)
    assert feats.shape == (2, 256, last, last)
    assert [n for n, _ in maps] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert [t.shape[1] for _, t in maps] == [64, 192, 384, 256, 256]
    torch.testing.assert_close(maps[-1][1], feats)


def test_imagenet_stem_shapes():
    with torch.device("meta"):
        model = alexnet(num_classes=10)
    maps = model.feature_maps(torch.empty(1, 3, 224, 224, device="meta"))
    assert [tuple(t.shape[-2:]) for _, t in maps] == [(27, 27), (13, 13), (13, 13), (13, 13), (6, 6)]


def test_backward_finite_grads():
    torch.manual_seed(0)
    model = alexnet(num_classes=10, in_channels=1, stem="small")
    nn.functional.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([0, 9])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_head_stages_and_reset():
    model = alexnet(num_classes=10, in_channels=1, stem="small")
    assert model.classifier_name == "classifier" and model.get_classifier() is model.classifier
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [s[0] for s in model.stages] == convs
    assert sum(n_params(s) for s in model.stages) == n_params(model.features)
    model.reset_classifier(2)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 2)


def test_bad_arguments_and_registry():
    with pytest.raises(UserError):
        AlexNet(stem="cifar")
    assert "alexnet" in list_models()
    assert create_model("alexnet", num_classes=4, in_channels=1, stem="small")(torch.randn(2, 1, 32, 32)).shape == (
        2,
        4,
    )
