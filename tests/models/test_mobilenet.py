import pytest
import torch
import torchvision
from _parity import assert_parity, fill_random_, n_params  # noqa: F401
from torch import nn

from archzoo.errors import UserError
from archzoo.models.mobilenet import DepthwiseSeparable, InvertedResidual, make_divisible, mobilenet_v1, mobilenet_v2
from archzoo.registry import create_model, list_models


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_v2_parity_with_torchvision(width):
    assert_parity(
        lambda: mobilenet_v2(num_classes=1000, in_channels=3, width_mult=width),
        lambda: torchvision.models.mobilenet_v2(weights=None, width_mult=width),
        32,
    )


def test_v1_matches_the_paper():
    with torch.device("meta"):
        model = mobilenet_v1()
        half = mobilenet_v1(width_mult=0.5)
    # Howard et al., table 6: 4.2M parameters at width 1, 1.3M at width 0.5
    assert round(n_params(model) / 1e6, 1) == 4.2
    assert round(n_params(half) / 1e6, 1) == 1.3
    blocks = [m for m in model.features if isinstance(m, DepthwiseSeparable)]
    assert len(blocks) == 13
    dw = blocks[0][0][0]
    assert dw.groups == dw.in_channels == 32 and dw.kernel_size == (3, 3)
    maps = model.feature_maps(torch.empty(1, 3, 224, 224, device="meta"))
    assert [(n, t.shape[1], t.shape[-1]) for n, t in maps] == [
        ("stem", 32, 112),
        ("stage1", 64, 112),
        ("stage2", 128, 56),
        ("stage3", 256, 28),
        ("stage4", 512, 14),
        ("stage5", 1024, 7),
    ]


def test_make_divisible():
    assert [make_divisible(v) for v in (32, 16 * 0.5, 24 * 0.75, 1280 * 1.4, 3)] == [32, 8, 24, 1792, 8]
    assert make_divisible(20) == 24  # 16 would be more than 10% below 20


@pytest.mark.parametrize("builder", [mobilenet_v1, mobilenet_v2])
def test_small_stem_shapes(builder):
    model = builder(num_classes=10, in_channels=1, stem="small").eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        logits, feats, maps = model(x), model.forward_features(x), model.feature_maps(x)
    assert logits.shape == (2, 10)
    assert feats.shape == (2, model.num_features, 4, 4)
    assert [n for n, _ in maps] == ["stem"] + [f"stage{i}" for i in range(1, 6)]
    assert [t.shape[-1] for _, t in maps] == [28, 28, 28, 14, 7, 4]  # overall stride 8
    torch.testing.assert_close(maps[-1][1], feats)


@pytest.mark.parametrize("builder", [mobilenet_v1, mobilenet_v2])
def test_width_multiplier(builder):
    with torch.device("meta"):
        full, half = builder(num_classes=10), builder(num_classes=10, width_mult=0.5)
    assert half.features[0][0].out_channels == 16 and full.features[0][0].out_channels == 32
    assert n_params(half) < n_params(full) / 2
    with pytest.raises(UserError):
        builder(width_mult=0)


def test_inverted_residual():
    block = InvertedResidual(16, 16, 1, 6).eval()
    assert block.use_res_connect and block.conv[0][0].out_channels == 96
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(block(x), x + block.conv(x))
    assert not InvertedResidual(16, 24, 2, 6).use_res_connect
    assert len(InvertedResidual(32, 16, 1, 1).conv) == 3  # no expansion when t = 1
    with pytest.raises(UserError):
        InvertedResidual(16, 16, 3, 6)


@pytest.mark.parametrize("builder", [mobilenet_v1, mobilenet_v2])
def test_backward_finite_grads(builder):
    torch.manual_seed(0)
    model = builder(num_classes=10, in_channels=1, stem="small", width_mult=0.5)
    nn.functional.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([2, 5])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_head_stages_and_reset():
    model = mobilenet_v2(num_classes=10, in_channels=1, stem="small", width_mult=0.5)
    assert model.classifier_name == "classifier" and model.get_classifier() is model.classifier
    assert sum(n_params(s) for s in model.stages) + n_params(model.features[0]) == n_params(model.features)
    assert model.stages[-1][-1] is model.features[-1]
    model.reset_classifier(3)
    assert isinstance(model.classifier[0], nn.Dropout) and model.classifier[-1].out_features == 3
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 3)


def test_registry():
    assert {"mobilenet_v1", "mobilenet_v2"} <= set(list_models("mobilenet*"))
    with pytest.raises(UserError, match="no argument"):
        create_model("mobilenet_v2", alpha=0.5)
