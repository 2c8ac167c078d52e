import pytest
import torch
import torchvision
from _parity import assert_parity, fill_random_, n_params  # noqa: F401
from torch import nn

from archzoo.errors import UserError
from archzoo.models.vgg import CONFIGS, VGG, vgg11, vgg16, vgg16_bn
from archzoo.registry import create_model, list_models


@pytest.mark.parametrize("name", ["vgg16", "vgg16_bn"])
def test_parity_with_torchvision(name):
    ours = {"vgg16": vgg16, "vgg16_bn": vgg16_bn}[name]
    # 32 px is the smallest input five max pools allow; adaptive pooling makes it 7x7
    assert_parity(
        lambda: ours(num_classes=1000, in_channels=3), lambda: getattr(torchvision.models, name)(weights=None), 32
    )


@pytest.mark.parametrize("builder", [vgg16, vgg16_bn])
def test_small_stem_shapes(builder):
    model = builder(num_classes=10, in_channels=1, stem="small").eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        logits, feats, maps = model(x), model.forward_features(x), model.feature_maps(x)
    assert logits.shape == (2, 10)
    assert feats.shape == (2, 512, 1, 1)
    assert [(n, tuple(t.shape[1:])) for n, t in maps] == [
        ("block1", (64, 14, 14)),
        ("block2", (128, 7, 7)),
        ("block3", (256, 3, 3)),
        ("block4", (512, 1, 1)),
        ("block5", (512, 1, 1)),  # the small layout has no fifth pool
    ]
    torch.testing.assert_close(maps[-1][1], feats)


def test_imagenet_layout_shapes():
    with torch.device("meta"):
        model = vgg16(num_classes=10, in_channels=1)
        model11 = vgg11()
    maps = model.feature_maps(torch.empty(2, 1, 64, 64, device="meta"))
    assert [t.shape[-1] for _, t in maps] == [32, 16, 8, 4, 2]
    assert model.classifier[0].in_features == 512 * 7 * 7 and model.classifier[0].out_features == 4096
    n_conv = sum(isinstance(m, nn.Conv2d) for m in model.features)
    n_linear = sum(isinstance(m, nn.Linear) for m in model.classifier)
    assert (n_conv, n_linear) == (13, 3)  # 16 weight layers
    assert sum(isinstance(m, nn.Conv2d) for m in model11.features) == 8


def test_backward_finite_grads():
    torch.manual_seed(0)
    model = vgg16_bn(num_classes=10, in_channels=1, stem="small")
    loss = nn.functional.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([3, 4]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_head_stages_and_reset():
    model = vgg16(num_classes=10, in_channels=1, stem="small")
    assert model.classifier_name == "classifier" and model.get_classifier() is model.classifier
    stages = model.stages
    assert len(stages) == 5 and all(isinstance(s, nn.Module) for s in stages)
    # the stages share the model's modules and together cover all of features
    assert sum(n_params(s) for s in stages) == n_params(model.features)
    assert stages[-1][0] is model.features[len(model.features) - len(stages[-1])]
    for p in model.parameters():
        p.requires_grad = False
    for p in stages[-1].parameters():  # unfreeze the last stage
        p.requires_grad = True
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("features.") for n in trainable)
    model.reset_classifier(4)
    assert model.classifier[-1].out_features == 4 and model(torch.randn(2, 1, 32, 32)).shape == (2, 4)


def test_bad_arguments_and_registry():
    with pytest.raises(UserError):
        VGG(CONFIGS["vgg16"], stem="tiny")
    names = list_models("vgg*")
    assert {"vgg11", "vgg11_bn", "vgg16", "vgg16_bn"} <= set(names)
    assert create_model("vgg11", num_classes=3, in_channels=1, stem="small")(torch.randn(2, 1, 28, 28)).shape == (2, 3)
    with pytest.raises(UserError, match="no argument"):
        create_model("vgg16", depth=19)
