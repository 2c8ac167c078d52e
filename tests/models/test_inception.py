import pytest
import torch
import torchvision
from _parity import assert_parity, fill_random_, n_params  # noqa: F401
from torch import nn

from archzoo.errors import UserError
from archzoo.models.inception import GoogLeNet, Inception, googlenet, inception_small
from archzoo.registry import create_model, list_models


def test_parity_with_torchvision():
    assert_parity(
        lambda: googlenet(num_classes=1000, in_channels=3),
        lambda: torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=False, init_weights=False),
        32,
    )


def test_aux_heads_match_torchvision():
    with torch.device("meta"):
        theirs = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=False, init_weights=False)
        ours = googlenet(num_classes=1000, aux_logits=True)
    theirs.to_empty(device="cpu")
    fill_random_(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True, assign=True)
    x = torch.randn(2, 3, 32, 32)
    theirs.train(), ours.train()
    torch.manual_seed(0)
    logits, aux2, aux1 = theirs(x)
    torch.manual_seed(0)
    ours_logits, ours_aux1, ours_aux2 = ours.forward_with_aux(x)
    for a, b in [(ours_logits, logits), (ours_aux1, aux1), (ours_aux2, aux2)]:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    ours.eval()
    assert ours.forward_with_aux(x)[1] is None and ours(x).shape == (2, 1000)


def test_inception_module():
    module = Inception(192, 64, 96, 128, 16, 32, 32)
    y = module(torch.randn(2, 192, 7, 7))
    assert y.shape == (2, 256, 7, 7) and module.out_channels == 256
    assert module.branch3[1].conv.kernel_size == (3, 3)
    assert Inception(192, 64, 96, 128, 16, 32, 32, kernel_5x5=5).branch3[1].conv.kernel_size == (5, 5)


def test_small_stem_shapes():
    model = inception_small(num_classes=10, in_channels=1).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        logits, feats, maps = model(x), model.forward_features(x), model.feature_maps(x)
    assert logits.shape == (2, 10)
    assert feats.shape == (2, model.num_features, 7, 7)
    assert [(n, t.shape[-1]) for n, t in maps] == [
        ("stem", 28),
        ("inception3", 28),
        ("inception4", 14),
        ("inception5", 7),
    ]
    torch.testing.assert_close(maps[-1][1], feats)
    with torch.device("meta"):  # full width: shapes only
        full = googlenet(num_classes=10, in_channels=1, stem="small")
        maps = full.feature_maps(torch.empty(2, 1, 28, 28))
        assert full(torch.empty(2, 1, 28, 28)).shape == (2, 10)
    assert [(n, t.shape[1], t.shape[-1]) for n, t in maps] == [
        ("stem", 192, 28),
        ("inception3", 480, 28),
        ("inception4", 832, 14),
        ("inception5", 1024, 7),
    ]


def test_imagenet_stem_shapes():
    with torch.device("meta"):
        model = googlenet(num_classes=10)
    maps = model.feature_maps(torch.empty(1, 3, 224, 224, device="meta"))
    assert [(n, t.shape[1], t.shape[-1]) for n, t in maps] == [
        ("stem", 192, 28),
        ("inception3", 480, 28),
        ("inception4", 832, 14),
        ("inception5", 1024, 7),
    ]


def test_backward_finite_grads():
    torch.manual_seed(0)
    model = inception_small(num_classes=10, in_channels=1)
    nn.functional.cross_entropy(model(torch.randn(2, 1, 28, 28)), torch.tensor([6, 8])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_head_stages_and_reset():
    model = inception_small(num_classes=10, in_channels=1)
    assert model.classifier_name == "fc" and model.get_classifier() is model.fc
    stages = model.stages
    assert len(stages) == 3 and stages[0][0] is model.inception3a and stages[-1][-1] is model.inception5b
    stem_params = sum(n_params(m) for m in (model.conv1, model.conv2, model.conv3))
    assert sum(n_params(s) for s in stages) + stem_params + n_params(model.fc) == n_params(model)
    model.reset_classifier(4)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 4)
    with torch.device("meta"):
        aux = googlenet(num_classes=10, aux_logits=True)
    aux.reset_classifier(4)
    assert aux.aux1.fc2.out_features == aux.aux2.fc2.out_features == 4


def test_bad_arguments_and_registry():
    with pytest.raises(UserError):
        GoogLeNet(stem="cifar")
    with pytest.raises(UserError):
        GoogLeNet(width_mult=0)
    assert {"googlenet", "inception_small"} <= set(list_models())
    assert create_model("inception_small", num_classes=3)(torch.randn(2, 3, 32, 32)).shape == (2, 3)
