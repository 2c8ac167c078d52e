"""Every registered model runs forward and backward on the example input it declares.

Each model is built with small arguments (where its builder accepts them) and fed
``model(*model.example_input(2))``: the model, not this test, knows what its forward
takes (images, latents and labels, noisy images and timesteps, points; token ids or
graph batches for the families to come).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from archzoo.models._classifier import ImageClassifier
from archzoo.registry import MODELS, list_models

# Small sizes for a fast test, passed to the builders that accept them.
SMALL = {
    "stem": "small",
    "num_classes": 3,
    "in_channels": 1,
    "image_size": 16,
    # What token and graph models take from their data's info.
    "vocab_size": 11,
    "num_node_features": 5,
    "pad_id": 0,
    "src_vocab_size": 11,  # sequence-to-sequence models: two vocabularies
    "tgt_vocab_size": 9,
    "num_nodes": 6,  # featureless graph models (R-GCN) have a row per node
    "num_relations": 4,
}


def _small_model(name: str) -> torch.nn.Module:
    accepted = inspect.signature(MODELS.get(name)).parameters
    return MODELS.create(name, **{k: v for k, v in SMALL.items() if k in accepted})


def _output_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        return next(o for o in out if isinstance(o, torch.Tensor))
    if isinstance(out, dict):
        return next(o for o in out.values() if isinstance(o, torch.Tensor))
    raise TypeError(type(out))


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_on_the_declared_example(name: str) -> None:
    torch.manual_seed(0)
    model = _small_model(name).train()
    args = model.example_input(2)
    assert isinstance(args, tuple), f"{name}: example_input must return forward's positional arguments"
    y = _output_tensor(model(*args))
    if all(isinstance(a, torch.Tensor) for a in args):  # a graph's output has a row per node, not per example
        assert y.shape[0] == 2
    assert torch.isfinite(y).all()
    y.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads, f"{name}: no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["resnet18", "convnet_small", "vae_conv", "dcgan", "ddpm_unet", "realnvp_2d", "mlp"])
def test_example_input_follows_the_batch_size_and_the_model(name: str) -> None:
    model = _small_model(name)
    args = model.example_input(5)
    assert all(a.shape[0] == 5 for a in args if isinstance(a, torch.Tensor))
    with torch.no_grad():
        assert _output_tensor(model.eval()(*args)).shape[0] == 5


# The VQ-VAE's nearest-code search has no meta-device kernel, and torchdiffeq checks the ODE-RNN's
# solver times with Tensor.item(); both are small enough to check on the CPU.
NO_META = {"vqvae", "ode_rnn"}


def _has_defaults(name: str) -> bool:
    """False for builders that need the data's facts (vocab_size, num_node_features) to be built at all."""
    params = inspect.signature(MODELS.get(name)).parameters.values()
    return all(
        p.default is not inspect.Parameter.empty
        for p in params
        if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD
    )


@pytest.mark.parametrize("name", [n for n in list_models() if _has_defaults(n)])
def test_example_input_fits_the_default_arguments(name: str) -> None:
    # On the meta device shapes are computed without memory or arithmetic, so even VGG-16's
    # 138M parameters and the ImageNet stems cost nothing here.
    with torch.device("cpu" if name in NO_META else "meta"):
        model = MODELS.create(name).eval()
        with torch.no_grad():
            out = _output_tensor(model(*model.example_input(2)))
    assert out.shape[0] == 2


def _image_classifiers() -> list[str]:
    """The registered models whose builder returns an image classifier (read from its return annotation)."""
    names = []
    for name in list_models():
        returns = typing.get_type_hints(MODELS.get(name)).get("return")
        if isinstance(returns, type) and issubclass(returns, ImageClassifier):
            names.append(name)
    return names


IMAGE_CLASSIFIERS = _image_classifiers()


def test_the_variants_without_a_recipe_are_image_classifiers() -> None:
    # Issue 18: these have no recipe of their own, so this file is what shows that they train.
    assert {"efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "resnet10", "resnet34", "vgg11"} <= set(
        IMAGE_CLASSIFIERS
    )


@pytest.mark.parametrize("name", IMAGE_CLASSIFIERS)
def test_image_classifier_takes_an_optimizer_step(name: str) -> None:
    torch.manual_seed(0)
    model = _small_model(name).train()
    # 16 px: the smallest size every small stem takes (VGG's four pools, AlexNet's three, LeNet's 5x5s),
    # a quarter of the example input's cost.
    x = torch.randn(2, model.in_channels, 16, 16)
    labels = torch.tensor([0, 2])
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = F.cross_entropy(model(x), labels)
    assert torch.isfinite(loss), f"{name}: loss {loss}"
    loss.backward()
    opt.step()
    after = list(model.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert changed >= len(after) // 2, f"{name}: only {changed} of {len(after)} parameter tensors changed"
