import pytest
import torch
import torchvision
from _parity import assert_parity, fill_random_, n_params  # noqa: F401
from torch import nn

from archzoo.errors import UserError
from archzoo.models.efficientnet import (
    EfficientNet,
    MBConv,
    StochasticDepth,
    efficientnet_b0,
    efficientnet_b1,
    efficientnet_b2,
    efficientnet_b3,
)
from archzoo.registry import create_model, list_models

BUILDERS = {"efficientnet_b0": efficientnet_b0, "efficientnet_b1": efficientnet_b1, "efficientnet_b2": efficientnet_b2}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_parity_with_torchvision(name):
    # b1 and b2 differ from b0 only by their coefficients: parity checks the compound scaling too
    assert_parity(
        lambda: BUILDERS[name](num_classes=1000, in_channels=3),
        lambda: getattr(torchvision.models, name)(weights=None),
        32,
    )


def blocks_per_stage(model: EfficientNet) -> list[int]:
    return [len(model.features[i]) for i in range(1, 8)]


def stage_widths(model: EfficientNet) -> list[int]:
    return [model.features[i][-1].out_channels for i in range(1, 8)]


def test_compound_scaling():
    with torch.device("meta"):
        b0, b1, b2, b3 = (
            f(num_classes=10) for f in (efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3)
        )
    assert blocks_per_stage(b0) == [1, 2, 2, 3, 3, 4, 1]
    assert blocks_per_stage(b1) == [2, 3, 3, 4, 4, 5, 2]  # ceil(n * 1.1)
    assert blocks_per_stage(b3) == [2, 3, 3, 5, 5, 6, 2]  # ceil(n * 1.4)
    assert stage_widths(b0) == [16, 24, 40, 80, 112, 192, 320]
    assert stage_widths(b1) == stage_widths(b0)  # depth only
    assert stage_widths(b2) == [16, 24, 48, 88, 120, 208, 352]  # width 1.1, rounded to multiples of 8
    assert b0.num_features == 1280 and b2.num_features == 1408 and b3.num_features == 1536
    assert n_params(b0) < n_params(b1) < n_params(b2) < n_params(b3)
    custom = EfficientNet(width_mult=0.5, depth_mult=0.5, num_classes=10)
    assert blocks_per_stage(custom) == [1, 1, 1, 2, 2, 2, 1] and stage_widths(custom)[0] == 8
    with pytest.raises(UserError):
        EfficientNet(width_mult=-1.0)


def test_mbconv_block():
    block = MBConv(16, 16, 3, 1, 6)
    se = block.block[2]
    assert type(se).__name__ == "SqueezeExcitation" and se.fc1.out_channels == 4  # a quarter of the input
    assert block.use_res_connect and not MBConv(16, 24, 5, 2, 6).use_res_connect
    assert len(MBConv(32, 16, 3, 1, 1).block) == 3  # no expansion when the ratio is 1


def test_stochastic_depth():
    torch.manual_seed(0)
    sd = StochasticDepth(0.5)
    x = torch.ones(1000, 2, 3, 3)
    y = sd(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # a whole sample is kept (x 1 / (1 - p)) or dropped
    assert (per_sample == per_sample[:, :1]).all()
    assert 400 < (per_sample[:, 0] == 0).sum() < 600
    torch.testing.assert_close(sd.eval()(x), x)
    with torch.device("meta"):
        model = efficientnet_b0(stochastic_depth_prob=0.2)
    probs = [b.stochastic_depth.p for stage in model.features[1:8] for b in stage]
    assert probs[0] == 0.0 and probs == sorted(probs) and abs(probs[-1] - 0.2 * 15 / 16) < 1e-9
    with pytest.raises(UserError):
        StochasticDepth(1.5)


def test_small_stem_shapes():
    model = efficientnet_b0(num_classes=10, in_channels=1, stem="small").eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        logits, feats, maps = model(x), model.forward_features(x), model.feature_maps(x)
    assert logits.shape == (2, 10)
    assert feats.shape == (2, 1280, 4, 4)
    assert [(n, t.shape[1], t.shape[-1]) for n, t in maps] == [
        ("stem", 32, 28),
        ("stage1", 16, 28),
        ("stage2", 24, 28),
        ("stage3", 40, 14),
        ("stage4", 80, 7),
        ("stage5", 112, 7),
        ("stage6", 192, 4),
        ("stage7", 1280, 4),  # the last stage includes the final 1x1 convolution
    ]
    torch.testing.assert_close(maps[-1][1], feats)


def test_backward_finite_grads():
    torch.manual_seed(0)
    model = efficientnet_b0(num_classes=10, in_channels=1, stem="small")
    nn.functional.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([1, 2])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_head_stages_and_reset():
    with torch.device("meta"):
        model = efficientnet_b0(num_classes=10, in_channels=1)
    assert model.classifier_name == "classifier" and model.get_classifier() is model.classifier
    assert len(model.stages) == 7
    assert sum(n_params(s) for s in model.stages) + n_params(model.features[0]) == n_params(model.features)
    model.reset_classifier(5)
    assert model.classifier[-1].out_features == 5


def test_registry():
    names = set(list_models("efficientnet*"))
    assert {"efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3"} <= names
    with pytest.raises(UserError, match="no argument"):
        create_model("efficientnet_b0", width_mult=2.0)
