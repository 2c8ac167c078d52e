import pytest
import torch
import torchvision
from torch import nn

from archzoo.errors import UserError
from archzoo.models.vgg import CONFIGS, VGG, vgg11, vgg16, vgg16_bn
from archzoo.registry import create_model, list_models


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fill_random_(model: nn.Module) -> None:
    """Fill every parameter and batch-norm statistic with cheap pseudo-random values: a
    random vector tiled over each tensor, He-scaled for weights, so one memory pass
    replaces torchvision's (slow, for VGG's 120M-weight head) initialisation."""
    size = 1_000_003
    base = torch.randn(size, generator=torch.Generator().manual_seed(0)).repeat(2)
    for i, (name, t) in enumerate(model.state_dict().items()):
        if not t.is_floating_point():
            t.zero_()
            continue
        n = t.numel()
        start = 7919 * i % size
        v = base[start : start + min(n, size)]  # a different stretch of the random vector per tensor
        if name.endswith("running_var"):
            v = v.abs() * 0.5 + 0.5
        elif name.endswith("running_mean"):
            v = 0.1 * v
        elif t.dim() > 1:
            v = v * (2.0 / t[0].numel()) ** 0.5
        elif name.endswith("weight"):
            v = 1 + 0.1 * v
        else:
            v = 0.1 * v
        flat, k = t.view(-1), n // size
        if k:
            flat[: k * size].view(k, size).copy_(v.expand(k, size))
        flat[k * size :].copy_(v[: n - k * size])


def assert_parity(ours_fn, theirs_fn, size: int) -> None:
    """torchvision's weights load into ours with strict=True, the parameter counts agree and
    the eval-mode logits match. Both are built on the meta device; torchvision's gets random
    values, and ours takes its tensors (assign=True: no second copy); strict loading still
    checks every name and shape."""
    with torch.device("meta"):
        theirs, ours = theirs_fn(), ours_fn()
    theirs.to_empty(device="cpu")
    fill_random_(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True, assign=True)
    assert n_params(ours) == n_params(theirs)
    assert not any(t.is_meta for t in ours.state_dict().values())
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


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
