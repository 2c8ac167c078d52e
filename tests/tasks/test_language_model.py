"""The language-model task: per-token loss from sums, carried state, checkpointed state, sampling and predict."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.models.rnn import lstm_lm
from archzoo.registry import create_task
from archzoo.tasks.language_model import LanguageModeling, filter_logits

ITOS = list("ab c\n")
CPU = torch.device("cpu")


def _task(contiguous: bool = True, carry_state: bool = True) -> LanguageModeling:
    t = create_task("language_model", carry_state=carry_state)
    t.setup(None, {"itos": ITOS, "vocab_size": len(ITOS), "contiguous": contiguous}, CPU)
    return t


def _stream(rows: int = 3, length: int = 25, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, len(ITOS), (rows, length + 1), generator=torch.Generator().manual_seed(seed))


def _batches(stream: torch.Tensor, block: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Contiguous (x, y) blocks of each row, as a TokenStream in 'streams' mode yields them."""
    t = stream.shape[1] - 1
    return [(stream[:, i : i + block], stream[:, i + 1 : i + block + 1]) for i in range(0, t - block + 1, block)]


@pytest.mark.parametrize("carry", [True, False])
def test_eval_is_summed_nll_over_tokens(carry: bool) -> None:
    torch.manual_seed(0)
    model = lstm_lm(vocab_size=len(ITOS), embed_dim=8, hidden_size=8).eval()
    task = _task(carry_state=carry)
    stream = _stream()
    batches = _batches(stream, 8)  # 3 blocks of 8 of each row's 25 targets
    with torch.no_grad():
        for b in batches:
            task.eval_step(model, b, "val")
        got = task.compute("val")
        if carry:  # carried state: the same as one pass over the rows
            logits, _ = model(stream[:, :24])
            nll = F.cross_entropy(logits.reshape(-1, len(ITOS)), stream[:, 1:25].reshape(-1), reduction="sum")
        else:
            nll = sum(
                F.cross_entropy(model(x)[0].reshape(-1, len(ITOS)), y.reshape(-1), reduction="sum") for x, y in batches
            )
    tokens = 3 * 24
    assert got["val/loss"] == pytest.approx(float(nll) / tokens, abs=1e-6)
    assert got["val/ppl"] == pytest.approx(math.exp(float(nll) / tokens), rel=1e-6)
    assert got["val/bpc"] == pytest.approx(float(nll) / tokens / math.log(2), abs=1e-6)
    # compute reset the sums and the evaluation state
    assert task.compute("val") == {} and "val" not in task.eval_states


def test_an_adaptive_head_scores_the_same_nll_through_its_targets_path(step_context: type) -> None:
    torch.manual_seed(0)
    model = lstm_lm(vocab_size=len(ITOS), embed_dim=8, hidden_size=8, head="adaptive", cutoffs=[3], div_value=2.0)
    model.eval()
    task = _task(carry_state=True)
    stream = _stream()
    with torch.no_grad():
        for b in _batches(stream, 8):
            task.eval_step(model, b, "val")
        got = task.compute("val")
        logp, _ = model(stream[:, :24])  # the full log-probabilities, scored by cross-entropy
        nll = F.cross_entropy(logp.reshape(-1, len(ITOS)), stream[:, 1:25].reshape(-1), reduction="sum")
    assert got["val/loss"] == pytest.approx(float(nll) / (3 * 24), abs=1e-6)
    # a training step takes the mean of the targets' NLL (no dropout here: the same numbers)
    model.train()
    x, y = _batches(stream, 8)[0]
    with torch.no_grad():
        logp, _ = model(x)
    expected = F.cross_entropy(logp.reshape(-1, len(ITOS)), y.reshape(-1))
    out = task.training_step(model, (x, y), step_context(model))
    assert float(out["loss"]) == pytest.approx(float(expected), abs=1e-6)


def test_count_is_target_tokens_without_sync() -> None:
    x, y = _batches(_stream(), 8)[0]
    assert _task().count((x, y)) == 24


def test_training_carries_detached_state_and_resets_each_epoch(step_context: type) -> None:
    torch.manual_seed(0)
    model = lstm_lm(vocab_size=len(ITOS), embed_dim=8, hidden_size=8)
    task, ctx = _task(), step_context(model)
    batches = _batches(_stream(), 8)
    logs = task.training_step(model, batches[0], ctx)
    assert logs["loss"].requires_grad is False
    h, c = task.train_state
    assert h.shape == (1, 3, 8) and h.grad_fn is None and c.grad_fn is None
    before = h.clone()
    task.training_step(model, batches[1], ctx)
    assert not torch.equal(task.train_state[0], before)
    task.start_epoch(1)
    assert task.train_state is None


def test_random_blocks_do_not_carry_state(step_context: type) -> None:
    model = lstm_lm(vocab_size=len(ITOS), embed_dim=8, hidden_size=8)
    for task in (_task(contiguous=False), _task(carry_state=False)):
        task.training_step(model, _batches(_stream(), 8)[0], step_context(model))
        assert task.train_state is None


def test_state_survives_extra_state_and_resumes_bitwise(tmp_path: Path, step_context: type) -> None:
    torch.manual_seed(0)
    model = lstm_lm(vocab_size=len(ITOS), embed_dim=8, hidden_size=8, cell="lstm")
    batches = _batches(_stream(), 8)
    task, ctx = _task(), step_context(model)
    task.training_step(model, batches[0], ctx)
    # A checkpoint: weights, optimizer and the task's state, through torch.save/load(weights_only=True).
    torch.save(
        {"model": model.state_dict(), "opt": ctx.opt.state_dict(), "task": task.extra_state()}, tmp_path / "s.pt"
    )
    saved = torch.load(tmp_path / "s.pt", weights_only=True)
    straight = task.training_step(model, batches[1], ctx)["loss"]

    model2 = lstm_lm(vocab_size=len(ITOS), embed_dim=8, hidden_size=8, cell="lstm")
    model2.load_state_dict(saved["model"])
    task2, ctx2 = _task(), step_context(model2)
    ctx2.opt.load_state_dict(saved["opt"])
    task2.load_extra_state(saved["task"])
    resumed = task2.training_step(model2, batches[1], ctx2)["loss"]
    assert torch.equal(straight, resumed)
    for a, b in zip(task.train_state, task2.train_state, strict=True):
        assert torch.equal(a, b)
    fresh = _task()
    fresh.load_extra_state(_task().extra_state())
    assert fresh.train_state is None


def test_gru_state_round_trips(step_context: type) -> None:
    model = lstm_lm(vocab_size=len(ITOS), embed_dim=8, hidden_size=8, cell="gru")
    task = _task()
    task.training_step(model, _batches(_stream(), 8)[0], step_context(model))
    other = _task()
    other.load_extra_state(task.extra_state())
    assert isinstance(other.train_state, torch.Tensor) and torch.equal(other.train_state, task.train_state)


def test_greedy_sample_from_carried_state_equals_recomputing_the_prefix(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = lstm_lm(vocab_size=len(ITOS), embed_dim=8, hidden_size=8)
    task = _task()
    [path] = task.sample(
        SimpleNamespace(model=model, info={"itos": ITOS}), tmp_path, prompt="ab a", tokens=12, temperature=0.0
    )
    assert path == tmp_path / "sample.txt"
    text = path.read_text()
    ids = [ITOS.index(ch) for ch in "ab a"]
    with torch.no_grad():
        for _ in range(12):
            logits, _ = model(torch.tensor([ids]))
            ids.append(int(logits[0, -1].argmax()))
    assert text == "".join(ITOS[i] for i in ids)


def test_sample_is_seeded_and_checks_its_prompt(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = lstm_lm(vocab_size=len(ITOS), embed_dim=8, hidden_size=8)
    task = _task()
    info = {"itos": ITOS}
    texts = [
        task.sample(
            SimpleNamespace(model=model, info=info),
            tmp_path / str(i),
            prompt="a",
            tokens=30,
            top_k=3,
            top_p=0.9,
            seed=s,
        )[0].read_text()
        for i, s in enumerate((1, 1, 2))
    ]
    assert texts[0] == texts[1] and texts[0] != texts[2]
    assert len(texts[0]) == 31 and texts[0].startswith("a")
    assert (
        len(task.sample(SimpleNamespace(model=model, info=info), tmp_path / "e", tokens=5)[0].read_text()) == 5
    )  # empty prompt
    with pytest.raises(UserError, match=r"'x', 'z'"):
        task.sample(SimpleNamespace(model=model, info=info), tmp_path, prompt="zax")
    with pytest.raises(UserError, match="top-p"):
        task.sample(SimpleNamespace(model=model, info=info), tmp_path, prompt="a", top_p=0.0)


def test_filter_logits_top_k_and_nucleus() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    keep = torch.isfinite(filter_logits(logits, top_k=2))
    assert keep.tolist() == [[True, True, False, False]]
    keep = torch.isfinite(filter_logits(logits, top_p=0.7))
    assert keep.tolist() == [[True, True, False, False]]
    keep = torch.isfinite(filter_logits(logits[:, [3, 1, 0, 2]], top_p=0.5))  # order does not matter
    assert keep.tolist() == [[False, False, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=1.0)).all()


def test_predict_reports_per_token_loss() -> None:
    torch.manual_seed(0)
    model = lstm_lm(vocab_size=len(ITOS), embed_dim=8, hidden_size=8).eval()
    task = _task()
    info = {"itos": ITOS}
    batch = task.read_inputs(["abc", "a b\n"], info)
    out = task.predict(model, batch)
    ids = torch.tensor([[0, 1, 3]])
    logits, _ = model(ids[:, :-1])
    expect = F.cross_entropy(logits[0], ids[0, 1:]).item()
    assert out[0][0] == pytest.approx(expect, abs=1e-6) and out[0][1] == 2
    lines = task.describe(out, ["abc", "a b\n"], info)
    assert lines[1].startswith("a b\\n\tloss=") and lines[1].endswith("tokens=3")
    with pytest.raises(UserError, match="too short"):
        task.read_inputs(["a"], info)
    with pytest.raises(UserError, match="'q'"):
        task.read_inputs(["aq"], info)


def test_a_word_tokenizer_reads_prompts_and_writes_words_apart(tmp_path: Path) -> None:
    from archzoo.data.tokenizers import WordTokenizer

    tok = WordTokenizer.train(" the cat sat\n the dog ran\n", mode="ptb")
    info = {"itos": tok.itos, "tokenizer": tok}
    torch.manual_seed(0)
    model = lstm_lm(vocab_size=tok.vocab_size, embed_dim=8, hidden_size=8)
    task = _task()
    text = task.sample(SimpleNamespace(model=model, info=info), tmp_path, prompt="the cat", tokens=4)[0].read_text()
    assert text.startswith("the cat") and text[len("the cat")] in " \n"
    words = text.split()
    assert 2 + 1 <= len(words) <= 2 + 4 and all(w in tok.itos for w in words)
    [(loss, n)] = task.predict(model, task.read_inputs(["the cat sat"], info))
    assert n == 3  # the cat sat <eos>: three predicted tokens
