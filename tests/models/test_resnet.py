import pytest
import torch
import torchvision
from _parity import assert_parity, fill_random_, n_params  # noqa: F401
from torch import nn

from archzoo.errors import UserError
from archzoo.models.resnet import BasicBlock, Bottleneck, ResNet, resnet10, resnet18, resnet20, resnet34, resnet50
from archzoo.registry import create_model, list_models


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_parity_with_torchvision(name):
    ours = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}[name]
    assert_parity(
        lambda: ours(num_classes=1000, in_channels=3), lambda: getattr(torchvision.models, name)(weights=None), 32
    )


@pytest.mark.parametrize(
    "builder",
    [resnet10, resnet20, lambda **kw: ResNet(Bottleneck, (1, 1, 1, 1), widths=(8, 16, 32, 64), **kw)],
    ids=["resnet10", "resnet20", "bottleneck"],
)
def test_small_stem_shapes(builder):
    model = builder(num_classes=10, in_channels=1, stem="small").eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        maps = model.feature_maps(x)
    assert logits.shape == (2, 10)
    side = 7 if model.num_stages == 3 else 4
    assert feats.shape == (2, model.num_features, side, side)
    names = [n for n, _ in maps]
    assert names == ["stem"] + [f"layer{i + 1}" for i in range(model.num_stages)]
    assert maps[0][1].shape[-2:] == (28, 28)  # the small stem keeps the resolution
    assert [t.shape[-1] for _, t in maps[1:]] == [28, 14, 7, 4][: model.num_stages]
    torch.testing.assert_close(maps[-1][1], feats)


def test_imagenet_stem_shapes():
    model = resnet18(num_classes=10, in_channels=1).eval()
    maps = model.feature_maps(torch.randn(2, 1, 64, 64))
    assert [(n, t.shape[1:]) for n, t in maps] == [
        ("stem", (64, 16, 16)),
        ("layer1", (64, 16, 16)),
        ("layer2", (128, 8, 8)),
        ("layer3", (256, 4, 4)),
        ("layer4", (512, 2, 2)),
    ]


@pytest.mark.parametrize("extra", [None, "se", "spatial"])
def test_backward_finite_grads(extra):
    torch.manual_seed(0)
    model = resnet10(num_classes=10, in_channels=1, stem="small", block_extra=extra)
    loss = nn.functional.cross_entropy(model(torch.randn(2, 1, 16, 16)), torch.tensor([1, 7]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_zero_init_residual():
    # resnet50's layout with narrow widths, so that building it stays cheap
    model = ResNet(Bottleneck, (3, 4, 6, 3), num_classes=10, widths=(8, 16, 32, 64), zero_init_residual=True)
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16
    for b in blocks:
        assert (b.bn3.weight == 0).all()
        assert (b.bn1.weight == 1).all() and (b.bn2.weight == 1).all()
    assert (model.bn1.weight == 1).all()
    assert all((s[0].downsample[1].weight == 1).all() for s in model.stages)

    model = resnet20(num_classes=10, zero_init_residual=True).eval()
    assert all((b.bn2.weight == 0).all() for b in model.modules() if isinstance(b, BasicBlock))
    # every block without a projection starts as the identity on its (non-negative) input
    x = model.stem(torch.randn(2, 3, 8, 8))
    torch.testing.assert_close(model.layer1(x), x)
    assert not (resnet20().layer1[0].bn2.weight == 0).any()


def test_block_extra_inserts_attention():
    with torch.device("meta"):  # structure only
        model = resnet18(num_classes=10, block_extra="se")
        plain = resnet18(num_classes=10)
        spatial = resnet50(num_classes=10, block_extra="spatial")
    ses = [b.extra for b in model.modules() if isinstance(b, BasicBlock)]
    assert len(ses) == 8 and all(type(m).__name__ == "SqueezeExcitation" for m in ses)
    assert ses[0].fc1.out_channels == 64 // 16
    assert n_params(model) > n_params(plain)
    assert all(type(b.extra).__name__ == "SpatialGate" for b in spatial.modules() if isinstance(b, Bottleneck))
    assert all(isinstance(b.extra, nn.Identity) for b in plain.modules() if isinstance(b, BasicBlock))
    with pytest.raises(UserError):
        resnet20(block_extra="cbam")


def test_head_stages_and_reset():
    model = resnet18(num_classes=10, in_channels=1, stem="small")
    assert model.classifier_name == "fc" and model.get_classifier() is model.fc
    assert model.stages == [model.layer1, model.layer2, model.layer3, model.layer4]
    # freeze all but the head, as a transfer-learning trainer would
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(model.classifier_name + ".")
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 512 * 10 + 10
    model.reset_classifier(3)
    assert model.fc.out_features == 3 and model(torch.randn(2, 1, 28, 28)).shape == (2, 3)


def test_bad_arguments():
    with pytest.raises(UserError):
        resnet20(stem="cifar")
    with pytest.raises(UserError):
        ResNet(BasicBlock, (2, 2), widths=(64, 128, 256))


def test_registry():
    names = list_models("resnet*")
    for name in ["resnet10", "resnet18", "resnet20", "resnet34", "resnet50"]:
        assert name in names
    model = create_model("resnet20", num_classes=5, in_channels=1)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 5)
    with pytest.raises(UserError, match="no argument"):
        create_model("resnet18", depth=3)
