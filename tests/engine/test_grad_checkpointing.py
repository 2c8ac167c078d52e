"""model.grad_checkpointing: the same loss, gradients and buffers with recomputed blocks, dropout included."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from archzoo.config import load_config
from archzoo.engine import checkpoint as ckpt
from archzoo.engine.builders import build_model
from archzoo.engine.trainer import Trainer
from archzoo.layers.transformer import TransformerBlock
from archzoo.models.unet import ResAttnBlock
from archzoo.registry import create_model

torch.set_num_threads(1)

# Small models of every family that checkpoints its blocks; dropout > 0 where the model has it.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet": ("resnet10", {"num_classes": 5, "in_channels": 1, "stem": "small"}),
    "resnet50": ("resnet50", {"num_classes": 3, "in_channels": 3, "stem": "small"}),
    "gpt": ("gpt", {"vocab_size": 40, "block_size": 16, "n_layer": 3, "n_head": 2, "n_embd": 32, "dropout": 0.0}),
    "gpt-dropout": (
        "gpt",
        {"vocab_size": 40, "block_size": 16, "n_layer": 3, "n_head": 2, "n_embd": 32, "dropout": 0.3},
    ),
    "unet-dropout": (
        "ddpm_unet",
        {"image_size": 8, "base_channels": 16, "channel_mults": [1, 2], "num_res_blocks": 1, "dropout": 0.3},
    ),
    "vit-dropout": ("vit", {"image_size": 8, "patch_size": 4, "dim": 32, "depth": 2, "heads": 2, "dropout": 0.3}),
    "transformer-dropout": ("transformer", {"src_vocab_size": 30, "tgt_vocab_size": 30, "dim": 32, "dropout": 0.3}),
    "gpt_seq2seq-dropout": (
        "gpt_seq2seq",
        {"src_vocab_size": 20, "tgt_vocab_size": 20, "n_layer": 2, "n_head": 2, "n_embd": 32, "dropout": 0.3},
    ),
    "bert-dropout": ("bert_classifier", {"vocab_size": 30, "num_classes": 3, "dim": 32, "dropout": 0.3}),
}


def _loss(out: Any) -> Tensor:
    """A scalar from a model's output (a tensor or a tuple holding tensors)."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return sum(o.float().pow(2).mean() for o in outs if isinstance(o, Tensor))  # type: ignore[return-value]


def _run(model: nn.Module, inputs: tuple[Any, ...], seed: int) -> tuple[Tensor, dict[str, Tensor]]:
    model.train()
    torch.manual_seed(seed)  # the same dropout masks for both models
    loss = _loss(model(*inputs))
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _first_layers(model: nn.Module) -> list[nn.Module]:
    """The first layer of each checkpointable block: a recompute always runs it again."""
    from archzoo.models.resnet import BasicBlock, Bottleneck

    first = {TransformerBlock: "attn", ResAttnBlock: "res", BasicBlock: "conv1", Bottleneck: "conv1"}
    return [getattr(m, first[type(m)]) for m in model.modules() if type(m) in first]


@pytest.mark.parametrize("case", list(MODELS))
def test_same_loss_gradients_and_buffers(case: str) -> None:
    name, kwargs = MODELS[case]
    torch.manual_seed(0)
    plain = create_model(name, **kwargs)
    checked = copy.deepcopy(plain)
    checked.set_grad_checkpointing(True)
    torch.manual_seed(1)
    inputs = plain.example_input(4)
    # Count block forwards: a checkpointed block runs again in the backward pass.
    calls = {"n": 0}

    def count(*_: Any) -> None:
        calls["n"] += 1

    blocks = _first_layers(checked)
    assert blocks
    for b in blocks:
        b.register_forward_pre_hook(count)
    loss_a, grads_a = _run(plain, inputs, seed=2)
    loss_b, grads_b = _run(checked, inputs, seed=2)
    assert calls["n"] == 2 * len(blocks)
    torch.testing.assert_close(loss_b, loss_a, atol=1e-6, rtol=0)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for k in grads_a:
        torch.testing.assert_close(grads_b[k], grads_a[k], atol=1e-6, rtol=0, msg=k)
    # Batch norms moved their running statistics once, not once more when recomputed.
    for (k, a), (_, b) in zip(plain.named_buffers(), checked.named_buffers(), strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=k)


def test_dropout_masks_are_replayed_not_redrawn() -> None:
    """Without the saved random state, recomputing a dropout block would draw new masks: the check has teeth."""
    name, kwargs = MODELS["gpt-dropout"]
    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    torch.manual_seed(1)
    (x,) = model.example_input(4)
    torch.manual_seed(2)
    first = _loss(model.train()(x))
    second = _loss(model(x))  # the next draw of the generator: other masks, another loss
    assert (first - second).abs() > 1e-4


def test_evaluation_and_no_grad_run_blocks_once() -> None:
    name, kwargs = MODELS["resnet"]
    model = create_model(name, **kwargs)
    model.set_grad_checkpointing(True)
    calls = {"n": 0}
    model.layer1[0].conv1.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    (x,) = model.example_input(2)
    with torch.no_grad():
        model.train()(x)
    model.eval()(x).sum().backward()
    assert calls["n"] == 2  # plain forwards: nothing saved for a recompute, nothing recomputed


def test_switching_off_again() -> None:
    name, kwargs = MODELS["gpt"]
    model = create_model(name, **kwargs)
    model.set_grad_checkpointing(True)
    assert all(b.grad_checkpointing for b in model.blocks)
    model.set_grad_checkpointing(False)
    assert not any(b.grad_checkpointing for b in model.blocks)


def test_the_builder_switches_it_on_and_refuses_models_without_it(tmp_path: Path) -> None:
    cfg = load_config(
        "digits-mlp", None, ["model.name=resnet10", "model.args={stem: small}", "model.grad_checkpointing=true"]
    )
    model = build_model(cfg, {"num_classes": 10, "in_channels": 1})
    assert all(stage.grad_checkpointing for stage in model.stages)
    r = subprocess.run(
        [sys.executable, "-m", "archzoo", "train", "--run-dir", str(tmp_path / "r"), "digits-mlp",
         "model.grad_checkpointing=true", "train.threads=1"],
        capture_output=True, text=True,
    )  # fmt: skip
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0] == (
        "archzoo: error: Model 'mlp' does not support model.grad_checkpointing; "
        "the ResNets, the Transformer models (gpt, gpt_seq2seq, transformer, bert, vit) and the U-Net do."
    )


def test_training_with_checkpointing_gives_the_same_weights(tmp_path: Path) -> None:
    """Three optimizer steps of a ResNet with batch norms on digits, with and without checkpointing."""
    common = ["log.progress=none", "log.plots=false", "log.tensorboard=false", "train.threads=1", "train.epochs=1",
              "train.max_steps=3", "optim.scheduler=none", "model.name=resnet10", "model.args={stem: small}"]  # fmt: skip
    weights = []
    for name, extra in (("plain", []), ("checkpointed", ["model.grad_checkpointing=true"])):
        tr = Trainer(load_config("digits-mlp", None, [*common, *extra]), run_dir=tmp_path / name)
        tr.fit()
        w, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(tr.run_dir / "checkpoints"))
        weights.append(w)
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        torch.testing.assert_close(weights[1][k], weights[0][k], atol=1e-6, rtol=0, msg=k)
