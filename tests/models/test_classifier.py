"""Tests for archzoo.models._classifier: the interface the image classifiers share."""

from __future__ import annotations

import pytest
import torch

from archzoo.registry import create_model


@pytest.mark.parametrize(
    ("name", "names"),
    [
        ("resnet20", ["stem", "layer1", "layer2", "layer3"]),
        ("vgg11", ["block1", "block2", "block3", "block4", "block5"]),
        ("lenet5", ["conv1", "conv2"]),
        ("attention_cnn", ["stem", "stage1", "stage2", "stage3"]),
        ("inception_small", ["stem", "inception3", "inception4", "inception5"]),
    ],
)
def test_feature_maps_are_named_and_end_in_forward_features(name: str, names: list[str]) -> None:
    kwargs = {"in_channels": 1} if name == "lenet5" else {"in_channels": 1, "stem": "small"}
    if name == "attention_cnn":
        kwargs.pop("stem")
    model = create_model(name, **kwargs).eval()
    (x,) = model.example_input(2)
    with torch.no_grad():
        maps = model.feature_maps(x)
        assert [n for n, _ in maps] == names
        torch.testing.assert_close(maps[-1][1], model.forward_features(x))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "convnet_small", "alexnet"])
def test_reset_classifier_swaps_the_last_linear_layer(name: str) -> None:
    model = create_model(name, num_classes=10, stem="small") if name != "convnet_small" else create_model(name)
    model.reset_classifier(4)
    head = model.get_classifier()
    last = head if isinstance(head, torch.nn.Linear) else head[-1]
    assert last.out_features == 4
    (x,) = model.eval().example_input(2)
    with torch.no_grad():
        assert model(x).shape == (2, 4)
