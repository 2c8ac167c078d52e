"""Masked LM: 15% of the real tokens chosen, 80/10/10 corruption, loss on the chosen positions only."""

from __future__ import annotations

import torch

from archzoo.data.splits import PaddedBatch
from archzoo.tasks.masked_lm import MaskedLM, mask_tokens

INFO = {"vocab_size": 100, "pad_id": 0, "mask_id": 4, "special_ids": [0, 1, 2, 3, 4]}


def test_proportions_follow_the_80_10_10_rule_on_real_tokens_only() -> None:
    torch.manual_seed(0)
    b, n = 512, 128
    x = torch.randint(5, 100, (b, n))
    x[:, 0], x[:, -1] = 2, 3  # [CLS] ... [SEP]
    lengths = torch.randint(n // 2, n + 1, (b,))
    x[torch.arange(n)[None] >= lengths[:, None]] = 0
    task = MaskedLM()
    task.setup(torch.nn.Identity(), INFO, torch.device("cpu"))
    corrupted, labels = task.corrupt(PaddedBatch(x=x, lengths=lengths))
    masked = corrupted.x
    chosen = labels != -100
    real = (x >= 5) & (torch.arange(n)[None] < lengths[:, None])
    assert not (chosen & ~real).any()  # never padding, [CLS] or [SEP]
    frac = chosen.sum() / real.sum()
    k = int(chosen.sum())  # about 7,000 chosen tokens: a binomial's sd of 0.004 around 0.15
    assert abs(float(frac) - 0.15) < 0.01
    to_mask = (masked == 4) & chosen
    kept = (masked == x) & chosen
    swapped = chosen & ~to_mask & ~kept
    # 80 / 10 / 10 (a random pick equal to the original counts as kept: 1 in 95 of the 10%).
    assert abs(int(to_mask.sum()) / k - 0.8) < 0.02
    assert abs(int(swapped.sum()) / k - 0.1 * 94 / 95) < 0.015
    assert abs(int(kept.sum()) / k - (0.1 + 0.1 / 95)) < 0.015
    assert (masked[swapped] >= 5).all()  # replacements are ordinary tokens
    assert torch.equal(labels[chosen], x[chosen]) and torch.equal(masked[~chosen], x[~chosen])


class Recorder(torch.nn.Module):
    """Logits that are uniform except a huge score of token 7 at one unchosen position."""

    def __init__(self, spot: tuple[int, int]) -> None:
        super().__init__()
        self.spot = spot
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, batch: PaddedBatch) -> torch.Tensor:
        logits = torch.zeros(*batch.x.shape, 100) + self.w
        logits[self.spot[0], self.spot[1], 7] = 1000.0
        return logits


def test_only_chosen_positions_carry_loss() -> None:
    task = MaskedLM(mask_prob=0.5)
    task.setup(torch.nn.Identity(), INFO, torch.device("cpu"))
    x = torch.full((2, 10), 9)
    batch = PaddedBatch(x=x, lengths=torch.tensor([10, 10]))
    torch.manual_seed(3)
    _, labels = task.corrupt(batch)
    unchosen = (labels == -100).nonzero()[0].tolist()
    torch.manual_seed(3)  # the same masks again
    loss, logs = task.loss(Recorder((unchosen[0], unchosen[1])), batch)
    torch.testing.assert_close(loss, torch.log(torch.tensor(100.0)))  # uniform on every chosen position
    assert float(logs["acc"]) <= 1.0


def test_evaluation_masks_repeat_and_leave_the_global_generator_alone() -> None:
    task = MaskedLM()
    task.setup(torch.nn.Identity(), INFO, torch.device("cpu"))
    torch.manual_seed(0)
    x = torch.randint(5, 100, (32, 50))
    batch = PaddedBatch(x=x, lengths=torch.full((32,), 50))
    model = torch.nn.Sequential()
    model.forward = lambda b: torch.nn.functional.one_hot(b.x, 100).float()  # predicts the input token
    state = torch.get_rng_state()
    task.eval_step(model, batch, "val")
    first = task.compute("val")
    task.eval_step(model, batch, "val")
    assert task.compute("val") == first
    assert torch.equal(torch.get_rng_state(), state)
    assert 0.0 < first["val/acc"] < 0.3  # right only where the token was kept or swapped to itself


def test_mask_tokens_without_real_tokens_changes_nothing() -> None:
    x = torch.tensor([[2, 3, 0]])
    out, labels = mask_tokens(x, torch.zeros_like(x, dtype=torch.bool), 4, torch.arange(5, 10))
    assert torch.equal(out, x) and (labels == -100).all()
