"""Every registered model runs forward and backward on a tiny input."""

from __future__ import annotations

import inspect

import pytest
import torch

from archzoo.registry import MODELS, list_models

# Input each model takes at its smallest: (builder overrides, input shape without batch).
SMALL_STEM = {"stem": "small"}


def _case(name: str) -> tuple[dict, tuple[int, ...]]:
    fn = MODELS.get(name)
    params = inspect.signature(fn).parameters
    kwargs: dict = {}
    if "stem" in params:
        kwargs.update(SMALL_STEM)
    if "num_classes" in params:
        kwargs["num_classes"] = 10
    if "vocab_size" in params:
        kwargs["vocab_size"] = 11
    if "num_node_features" in params:
        kwargs["num_node_features"] = 5
    if name.startswith("mlp"):
        return {"in_features": 12, "num_classes": 3}, (12,)
    if name == "realnvp_2d":
        return {}, (2,)
    if "in_channels" in params:
        kwargs["in_channels"] = 1
    size = 32 if name in ("googlenet", "inception_small", "ddpm_unet", "unet") else 28
    if "image_size" in params:
        kwargs["image_size"] = size
    return kwargs, (1, size, size)


def _output_tensor(out: object) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        return next(o for o in out if isinstance(o, torch.Tensor))
    if isinstance(out, dict):
        return next(o for o in out.values() if isinstance(o, torch.Tensor))
    raise TypeError(type(out))


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    kwargs, shape = _case(name)
    model = MODELS.create(name, **kwargs)
    model.train()
    if hasattr(model, "example_input"):
        # Sequence and graph models declare what they take (token ids, a PaddedBatch, a PyG batch);
        # their output rows are tokens, sequences, graphs or nodes, so only finiteness is checked.
        y = _output_tensor(model(model.example_input(2)))
    else:
        x = torch.randn(2, *shape)
        if hasattr(model, "training_forward"):
            out = model.training_forward(x)
        else:
            out = model(x) if not hasattr(model, "generator") else model.discriminator(x)
        y = _output_tensor(out)
        assert y.shape[0] == 2
    assert torch.isfinite(y).all()
    y.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads, f"{name}: no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads)
