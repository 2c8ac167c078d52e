r"""Gradient (activation) checkpointing of a model's blocks.

From Chen et al., `"Training Deep Nets with Sublinear Memory Cost"
<https://arxiv.org/abs/1604.06174>`_ (2016): instead of keeping every
intermediate activation of a block for the backward pass, keep only the block's
input and recompute the block's forward when its gradient is needed. For a
stack of :math:`L` blocks with :math:`a` bytes of activations each, the stored
activations fall from :math:`L a` to about :math:`L\,|x| + a` (the block inputs
plus one block being recomputed), for one extra forward per block.

A model takes part by mixing in :class:`GradCheckpointing` and running each block
through :func:`checkpointed`; ``model.grad_checkpointing=true`` calls its
``set_grad_checkpointing(True)``. Dropout draws the same masks when recomputed
(the random state is saved and restored), and batch norms inside a recomputed
block normalise by the batch again while their running statistics move once
only, so a checkpointed step gives the loss, the gradients and the buffers of a
plain step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

_STATS = ("running_mean", "running_var", "num_batches_tracked")


@contextlib.contextmanager
def _norm_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Inside: the batch norms of ``module`` update throwaway copies of their running statistics.

    A recomputed block normalises by the batch as the first forward did (and saves the same
    tensors for the backward), but its batch norms' running statistics are not moved twice.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    kept = [{k: getattr(m, k) for k in _STATS} for m in norms]
    for m, stats in zip(norms, kept, strict=True):
        for k, v in stats.items():
            if v is not None:
                setattr(m, k, v.clone())
    try:
        yield
    finally:
        for m, stats in zip(norms, kept, strict=True):
            for k, v in stats.items():
                setattr(m, k, v)


def checkpointed(
    fn: Callable[..., Any], *args: Any, enabled: bool, module: nn.Module | None = None, **kwargs: Any
) -> Any:
    """``fn(*args, **kwargs)``, under :func:`torch.utils.checkpoint.checkpoint` (non-reentrant) when
    ``enabled``, the module is in training mode and gradients are being recorded; evaluation and
    ``torch.no_grad`` run it plainly.

    Args:
        fn: the block (a module) or a function running it.
        *args: its inputs.
        enabled: the model's ``grad_checkpointing`` flag.
        module: the module ``fn`` runs, whose mode decides and whose batch norms are frozen
            while it is recomputed (default: ``fn`` itself, which must then be a module).
        **kwargs: its keyword inputs.
    """
    mod = module if module is not None else fn
    if not isinstance(mod, nn.Module):
        raise TypeError("checkpointed needs the module that fn runs")
    if not (enabled and mod.training and torch.is_grad_enabled()):
        return fn(*args, **kwargs)

    def contexts() -> tuple[contextlib.AbstractContextManager[None], contextlib.AbstractContextManager[None]]:
        return contextlib.nullcontext(), _norm_stats_frozen(mod)

    return checkpoint(fn, *args, use_reentrant=False, context_fn=contexts, **kwargs)


class GradCheckpointing:
    """Mixin of models whose blocks can be checkpointed: ``set_grad_checkpointing(enabled)``.

    It sets ``grad_checkpointing`` on the model and on every submodule that has the attribute
    (a :class:`~archzoo.layers.transformer.TransformerBlock` checkpoints itself), so a model
    holding other models (an encoder inside a classifier) switches them all.
    """

    grad_checkpointing: bool = False
    modules: Callable[[], Iterator[nn.Module]]

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        for m in self.modules():
            if hasattr(m, "grad_checkpointing"):
                m.grad_checkpointing = bool(enabled)


class CheckpointSequential(nn.Sequential):
    """An ``nn.Sequential`` (same state-dict keys) that checkpoints each child when ``grad_checkpointing`` is set.

    A ResNet stage is one: each residual block then keeps only its input for the backward pass.

    Shapes:
        those of its children.
    """

    grad_checkpointing: bool = False

    def forward(self, x: Any) -> Any:
        for m in self:
            x = checkpointed(m, x, enabled=self.grad_checkpointing)
        return x
