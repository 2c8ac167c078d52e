"""Torchvision parity helpers shared by the vision model tests."""

import torch
from torch import nn


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
