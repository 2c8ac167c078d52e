"""Tests for archzoo.models.gpt_seq2seq: the decoder-only seq2seq model's layout, masks and cached greedy decoding."""

from __future__ import annotations

import pytest
import torch

from archzoo.data.splits import PaddedBatch
from archzoo.errors import UserError
from archzoo.models.gpt_seq2seq import GPTSeq2Seq


def _model() -> GPTSeq2Seq:
    torch.manual_seed(0)
    return GPTSeq2Seq(
        src_vocab_size=9, tgt_vocab_size=7, max_src_len=6, max_tgt_len=5, n_layer=2, n_head=2, n_embd=16
    ).eval()


def test_greedy_with_the_cache_equals_argmax_of_the_teacher_forced_pass() -> None:
    m = _model()
    src = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    lengths = torch.tensor([4, 2])
    ids, attn = m.greedy(src, lengths, max_len=5)
    assert attn.shape == (2, ids.shape[1], 4)
    # Fed back as the target, the greedy output is the argmax at every position up to its <eos>.
    logits = m(PaddedBatch(x=src, lengths=lengths, y=ids, y_lengths=torch.full((2,), ids.shape[1])))
    first_eos = [(row == m.eos_id).nonzero()[0, 0].item() + 1 if (row == m.eos_id).any() else len(row) for row in ids]
    for b, n in enumerate(first_eos):
        assert torch.equal(logits[b, :n].argmax(-1), ids[b, :n])


def test_outputs_do_not_depend_on_the_batch_padding_or_the_padding_ids() -> None:
    m = _model()
    y = torch.tensor([[3, 4, 2]])
    alone = m(PaddedBatch(x=torch.tensor([[5, 6]]), lengths=torch.tensor([2]), y=y, y_lengths=torch.tensor([3])))
    padded_src = torch.tensor([[5, 6, 8, 8, 8], [3, 4, 5, 6, 7]])  # junk after the real tokens of row 0
    both = m(PaddedBatch(x=padded_src, lengths=torch.tensor([2, 5]), y=y.repeat(2, 1), y_lengths=torch.tensor([3, 3])))
    torch.testing.assert_close(both[0], alone[0], atol=1e-5, rtol=1e-5)


def test_the_answer_cannot_see_its_future() -> None:
    m = _model()
    x, lengths = torch.tensor([[3, 4, 5]]), torch.tensor([3])
    a = m(PaddedBatch(x=x, lengths=lengths, y=torch.tensor([[3, 4, 5, 2]]), y_lengths=torch.tensor([4])))
    b = m(PaddedBatch(x=x, lengths=lengths, y=torch.tensor([[3, 6, 6, 2]]), y_lengths=torch.tensor([4])))
    torch.testing.assert_close(a[:, :2], b[:, :2])  # positions 0, 1 read <bos>, y_1 only
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_too_long_sources_and_beam_search_are_refused() -> None:
    m = _model()
    with pytest.raises(UserError, match="window of 6"):
        m.greedy(torch.ones(1, 7, dtype=torch.long) * 3, torch.tensor([7]))
    with pytest.raises(UserError, match="beam=1"):
        m.beam_search(torch.ones(1, 2, dtype=torch.long), torch.tensor([2]), 3, 5, 0.6)
