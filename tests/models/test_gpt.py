"""GPT: cached and uncached generation agree, the cache stays out of state, tied weights, decay groups,
sampling options, position limits, and Hugging Face GPT-2 weights giving GPT-2's logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archzoo.engine.optim import param_groups
from archzoo.errors import UserError
from archzoo.layers.attention import KVCache
from archzoo.models.gpt import GPT, gpt


def _tiny(**kw: object) -> GPT:
    torch.manual_seed(0)
    args = {"vocab_size": 23, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16, **kw}
    return gpt(**args).eval()


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope"])
def test_greedy_with_cache_equals_without(positions: str) -> None:
    m = _tiny(positions=positions)
    x = torch.randint(0, 23, (3, 4))
    # 4 + 12 - 1 = 15 positions: within the block; then well past it (the re-read window)
    for n in (12, 30):
        a = m.generate(x, n, temperature=0.0)
        b = m.generate(x, n, temperature=0.0, use_cache=False)
        assert a.shape == (3, 4 + n)
        assert torch.equal(a[:, :4], x)
        assert torch.equal(a, b)


def test_cached_generation_equals_argmax_of_full_forward() -> None:
    m = _tiny()
    ids = torch.randint(0, 23, (1, 3))
    out = m.generate(ids, 8, temperature=0.0)
    ref = ids
    with torch.no_grad():
        for _ in range(8):
            logits, _ = m(ref)
            ref = torch.cat([ref, logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, ref)


def test_long_prompt_is_cropped_to_the_block() -> None:
    m = _tiny()
    ids = torch.randint(0, 23, (2, 40))  # longer than block_size 16
    out = m.generate(ids, 5, temperature=0.0)
    assert torch.equal(out[:, :40], ids)
    cropped = m.generate(ids[:, -16:], 5, temperature=0.0)
    assert torch.equal(out[:, 40:], cropped[:, 16:])


def test_cache_never_enters_state_dict_or_checkpoint(tmp_path: Path) -> None:
    from archzoo.engine.checkpoint import load_weights_file, save_weights

    m = _tiny()
    before = set(m.state_dict())
    names = {n for n, _ in m.named_buffers()} | {n for n, _ in m.named_parameters()}
    m.generate(torch.randint(0, 23, (2, 3)), 6)
    assert set(m.state_dict()) == before
    assert {n for n, _ in m.named_buffers()} | {n for n, _ in m.named_parameters()} == names
    assert not any(isinstance(v, KVCache) for v in vars(m).values())
    save_weights(m, tmp_path / "w.safetensors")
    saved = load_weights_file(tmp_path / "w.safetensors")
    assert set(saved) == before
    assert not any("cache" in k or k.endswith((".k", ".v")) for k in saved)


def test_weight_tying_shares_one_tensor() -> None:
    m = _tiny()
    assert m.head.weight is m.wte.weight
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in set(m.parameters()))
    untied = _tiny(tie_weights=False)
    assert untied.head.weight is not untied.wte.weight


def test_gpt2_init_scales_residual_projections() -> None:
    torch.manual_seed(0)
    m = GPT(vocab_size=50, block_size=8, n_layer=8, n_head=2, n_embd=64).requires_grad_(False)
    fc1 = torch.cat([b.ff.fc1.weight.flatten() for b in m.blocks]).std()
    fc2 = torch.cat([b.ff.fc2.weight.flatten() for b in m.blocks]).std()
    assert abs(float(fc1) - 0.02) < 0.002
    assert abs(float(fc2) - 0.02 / 4) < 0.0005  # 1/sqrt(2 * 8)
    assert all(float(b.attn.qkv.bias.abs().max()) == 0 for b in m.blocks)


def test_decay_groups_leave_norms_biases_and_vectors_undecayed() -> None:
    m = _tiny(positions="learned")
    groups, decayed = param_groups(m, 0.1)
    by_id = {id(p): n for n, p in m.named_parameters()}
    decay = {by_id[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    no_decay = {by_id[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert "blocks.0.attn.qkv.weight" in decay and "blocks.1.ff.fc2.weight" in decay and "wte.weight" in decay
    assert all(n.endswith("bias") or "norm" in n or n.startswith("ln_f") for n in no_decay)
    assert {"ln_f.weight", "blocks.0.norm1.weight", "blocks.0.attn.qkv.bias"} <= no_decay
    assert all(p.ndim >= 2 for g in groups if g["weight_decay"] > 0 for p in g["params"])
    total = sum(len(g["params"]) for g in groups)
    assert total == len(list(m.parameters()))  # the tied weight once


def test_no_bias_form_has_no_biases() -> None:
    m = _tiny(bias=False)
    assert not [n for n, _ in m.named_parameters() if n.endswith("bias")]
    logits, state = m(torch.randint(0, 23, (2, 5)))
    assert logits.shape == (2, 5, 23) and state is None


def test_positions_past_the_block_and_a_state_are_refused() -> None:
    m = _tiny()
    with pytest.raises(UserError, match="block_size of 16"):
        m(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(UserError, match="carry_state=false"):
        m(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1))
    with pytest.raises(UserError, match="positions must be one of"):
        _tiny(positions="alibi")
    with pytest.raises(UserError, match="divide"):
        _tiny(n_embd=15)


def test_sampling_options() -> None:
    m = _tiny()
    x = torch.randint(0, 23, (1, 2))

    def draw(seed: int, **kw: object) -> torch.Tensor:
        return m.generate(x, 10, generator=torch.Generator().manual_seed(seed), **kw)[0, 2:]

    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))
    # top_k=1 and a tiny nucleus both leave the argmax alone: greedy
    greedy = m.generate(x, 10, temperature=0.0)[0, 2:]
    assert torch.equal(draw(3, top_k=1), greedy)
    assert torch.equal(draw(4, top_p=1e-6), greedy)
    # a very low temperature is greedy too; a high one is not
    assert torch.equal(draw(5, temperature=1e-4), greedy)
    hot = torch.stack([draw(s, temperature=5.0) for s in range(6)])
    assert not (hot == greedy).all()
    # top_k=3 draws only among the three most likely tokens of each step
    ids = x
    for _ in range(6):
        nxt = m.generate(ids, 1, top_k=3, generator=torch.Generator().manual_seed(len(ids[0])))[:, -1:]
        with torch.no_grad():
            top3 = m(ids)[0][0, -1].topk(3).indices
        assert int(nxt) in top3.tolist()
        ids = torch.cat([ids, nxt], 1)
    for bad, match in (({"temperature": -1.0}, "temperature"), ({"top_p": 0.0}, "top_p"), ({"top_k": -2}, "top_k")):
        with pytest.raises(UserError, match=match):
            m.generate(x, 3, **bad)


# ----------------------------------------------------------------------------- Hugging Face GPT-2


def _hf_gpt2(tmp_path: Path) -> tuple[object, Path]:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=64, bos_token_id=None, eos_token_id=None
    )
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    folder = tmp_path / "gpt2"
    hf.save_pretrained(folder)
    return hf, folder


def test_hf_gpt2_folder_gives_the_same_logits(tmp_path: Path) -> None:
    hf, folder = _hf_gpt2(tmp_path)
    ours = GPT.from_pretrained(folder).eval()
    assert ours.head.weight is ours.wte.weight
    x = torch.randint(0, 100, (2, 20))
    with torch.no_grad():
        ref = hf(x).logits
        logits, _ = ours(x)
    torch.testing.assert_close(logits, ref, atol=1e-4, rtol=0)
    # and the cached decoder agrees with HF's own greedy continuation
    with torch.no_grad():
        hf_ids = hf.generate(x[:1, :5], max_new_tokens=10, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(x[:1, :5], 10, temperature=0.0), hf_ids)


def test_hf_gpt2_folder_errors_name_the_tensor(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    _, folder = _hf_gpt2(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    missing = {k: v for k, v in state.items() if k != "transformer.h.1.mlp.c_fc.weight"}
    save_file(missing, str(folder / "model.safetensors"))
    with pytest.raises(UserError, match=r"lack the tensor 'transformer\.h\.1\.mlp\.c_fc\.weight'"):
        GPT.from_pretrained(folder)
    bad = dict(state)
    bad["transformer.h.0.attn.c_attn.weight"] = torch.zeros(96, 32)  # transposed: (out, in)
    save_file(bad, str(folder / "model.safetensors"))
    with pytest.raises(UserError, match=r"'transformer\.h\.0\.attn\.c_attn\.weight' .* shape \(96, 32\).*\(32, 96\)"):
        GPT.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(UserError, match="pickled"):
        GPT.from_pretrained(folder)
    with pytest.raises(UserError, match="does not exist"):
        GPT.from_pretrained(tmp_path / "nowhere")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["activation_function"] = "swish_glu"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="swish_glu"):
        GPT.from_pretrained(folder)


# ----------------------------------------------------------------------------- through the CLI


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_cli_trains_and_samples_a_gpt(
    tokenizer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from archzoo.cli import main

    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"the cat {i} sat on the mat, said the dog.\n" for i in range(60)), encoding="utf-8")
    run = tmp_path / "run"
    extra = ["data.args.vocab_size=300"] if tokenizer == "bpe" else []
    rc = main(
        [
            "train",
            "shakespeare-gpt",
            "data.name=text_file",
            f"data.args.path={corpus}",
            f"data.args.tokenizer={tokenizer}",
            "data.args.block_size=16",
            *extra,
            "data.batch_size=8",
            "model.args.n_layer=1",
            "model.args.n_embd=32",
            "train.epochs=1",
            "train.max_steps=4",
            "train.eval_every=0",
            "optim.warmup_steps=1",
            "log.progress=none",
            "--run-dir",
            str(run),
        ]
    )
    assert rc == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--prompt", "the cat", "--tokens", "12", "--temperature", "0"]) == 0
    text = (run / "samples" / "sample.txt").read_text(encoding="utf-8")
    assert text.startswith("the cat") and len(text) > len("the cat")
    # a prompt longer than the block is cropped to its last block_size tokens, not refused
    assert main(["sample", str(run), "--prompt", "the cat sat on the mat, " * 8, "--tokens", "3"]) == 0
    if tokenizer == "char":
        capsys.readouterr()
        assert main(["sample", str(run), "--prompt", "the €", "--tokens", "3"]) != 0
        err = capsys.readouterr().err
        assert "'€'" in err and "Traceback" not in err
