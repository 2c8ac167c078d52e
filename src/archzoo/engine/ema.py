r"""An exponential moving average of a model's weights (``train.ema_decay``).

After every optimizer step of the loop (each batch, or each accumulation group)
the engine updates a shadow copy of the model's floating-point tensors
(parameters and buffers such as batch-norm running statistics):

.. math::
    \bar\theta \leftarrow \beta_n \bar\theta + (1 - \beta_n)\,\theta,
    \qquad \beta_n = \min\!\Big(\beta, \frac{1 + n}{10 + n}\Big),

where :math:`n` counts the updates so far. The warm-up term keeps the average
from clinging to the random initial weights in short runs (the rule of
TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``); after a few
thousand steps :math:`\beta_n = \beta`. Integer buffers (batch counts) are
copied, not averaged. A task that steps some module less often than every
batch (WGAN-GP's generator, once every ``n_critic`` batches) sees a longer
window for it: :math:`\beta` per batch is :math:`\beta^{n_{critic}}` per generator step.

Averaged weights are the usual last step of DDPM training (Ho et al. 2020 use
:math:`\beta = 0.9999`) and help GAN generators (Yazıcı et al. 2019,
https://arxiv.org/abs/1806.04498). The engine evaluates, selects the best
checkpoint with, and saves the averaged weights; full checkpoints carry the
raw weights and the average side by side, so resume continues exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from archzoo.utils import unwrap


class WeightEMA:
    """The shadow weights of ``model`` under decay ``decay`` (see the module docstring).

    Args:
        model: the model whose ``state_dict`` is averaged (DDP and compile wrappers are looked through).
        decay: :math:`\\beta` in [0, 1); 0.999 averages over about the last thousand steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}.")
        self.decay = float(decay)
        self.updates = 0
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in unwrap(model).state_dict().items()}
        self._float = [k for k, v in self.shadow.items() if v.is_floating_point()]
        self._other = [k for k, v in self.shadow.items() if not v.is_floating_point()]

    def current_decay(self) -> float:
        """:math:`\\beta_n` for the next update."""
        n = self.updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow toward the model's current weights (call after each optimizer step)."""
        live = unwrap(model).state_dict()
        d = self.current_decay()
        if self._float:
            # lerp(s, v, w) = s + w (v - s) = (1 - w) s + w v, one fused kernel over every tensor.
            torch._foreach_lerp_([self.shadow[k] for k in self._float], [live[k].detach() for k in self._float], 1 - d)
        for k in self._other:
            self.shadow[k].copy_(live[k])
        self.updates += 1

    def state_dict(self) -> dict[str, Tensor]:
        """The shadow weights, as contiguous CPU copies (for a safetensors file)."""
        return {k: v.detach().cpu().contiguous().clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, Tensor], updates: int) -> None:
        """Restore the shadow (from :meth:`state_dict`) and the update count; keys must match."""
        if state.keys() != self.shadow.keys():
            missing = sorted(self.shadow.keys() - state.keys())[:1] or sorted(state.keys() - self.shadow.keys())[:1]
            raise KeyError(f"EMA weights do not match the model (first differing key: {missing[0]})")
        with torch.no_grad():
            for k, v in state.items():
                self.shadow[k].copy_(v)
        self.updates = int(updates)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Inside the block ``model`` holds the averaged weights; its own come back afterwards."""
        m = unwrap(model)
        backup = {k: v.detach().clone() for k, v in m.state_dict().items()}
        m.load_state_dict(self.shadow, strict=True)
        try:
            yield
        finally:
            m.load_state_dict(backup, strict=True)

    def copy_to(self, model: nn.Module) -> None:
        """Put the averaged weights into ``model`` for good (at the end of training)."""
        unwrap(model).load_state_dict(self.shadow, strict=True)
