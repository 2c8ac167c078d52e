"""Character GPT on tiny Shakespeare: archzoo's CPU recipe against a plain nanoGPT-style loop, in one run.

Usage: ``python benchmarks/nanogpt_shakespeare.py [--recipe shakespeare-gpt] [--threads 2]
[--data-dir D] [--baseline-only] [key=value ...]`` (overrides go to the archzoo recipe;
``--baseline-only`` trains the baseline and prints its curve, writing nothing).

**The baseline** is written here the way nanoGPT's ``train.py`` trains a character model on a
CPU (its README's configuration for a laptop): a 4-layer, 4-head, 128-wide GPT without biases,
block 64, batch 12 of random windows drawn with ``torch.randint`` and stacked row by row,
2000 iterations, dropout 0, AdamW (β2 0.99, weight decay 0.1 on the matrices only) at lr 1e-3
with 100 linear warm-up steps and cosine decay to 1e-4 at iteration 2000, gradient clipping at
1.0, fp32. nanoGPT reports a validation loss of 1.88 for it. Its wall-clock is the training
loop's alone: the clock stops during the validations of the curve.

**archzoo's side** trains the recipe through the engine (``Trainer``), once as shipped with
``train.max_time`` at the baseline's wall-clock, and reports the first validation at which its
val loss is at or below the baseline's final one, with the engine's clock (which counts the
validations, so archzoo pays for its own). The target: that moment comes within half the
baseline's wall-clock. A second training stretches the recipe's schedule (``train.max_steps``
times ``--stretch``), validates every 100 steps for the curve, and stops at the baseline's
wall-clock: the lowest val loss the recipe reaches in that time.

**Validation loss** is the mean NLL per character over the whole validation span (the last 10%
of the characters), in consecutive non-overlapping windows of 64 characters, computed by one
function here for both models from their final weights, and by the engine (the same windows at
the recipe's block size) for archzoo's curve. Writes ``results/nanogpt-shakespeare.json`` and
``results/nanogpt-shakespeare-curve.png`` (val loss against seconds, both sides).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402

#: nanoGPT's CPU configuration for shakespeare_char (its README), the baseline's settings.
BASELINE = {
    "n_layer": 4,
    "n_head": 4,
    "n_embd": 128,
    "block_size": 64,
    "batch_size": 12,
    "max_iters": 2000,
    "dropout": 0.0,
    "bias": False,
    "lr": 1e-3,
    "min_lr": 1e-4,
    "warmup_iters": 100,
    "lr_decay_iters": 2000,
    "beta1": 0.9,
    "beta2": 0.99,
    "weight_decay": 0.1,
    "grad_clip": 1.0,
    "eval_interval": 250,
}
NANOGPT_VAL = 1.88  # nanoGPT README, "baby GPT" on a CPU
EVAL_BLOCK = 64


# ----------------------------------------------------------------------------- the baseline, as a user writes it


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(d, 3 * d, bias=bias)
        self.c_proj = nn.Linear(d, d, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))  # (B, h, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, d: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, bias=bias)
        self.attn = _Attention(d, heads, bias)
        self.ln_2 = nn.LayerNorm(d, bias=bias)
        self.c_fc = nn.Linear(d, 4 * d, bias=bias)
        self.c_proj = nn.Linear(4 * d, d, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class BaselineGPT(nn.Module):
    """A GPT-2-shaped character model as tutorials write it: tied embedding, pre-norm blocks, no biases."""

    def __init__(self, vocab: int, n_layer: int, n_head: int, n_embd: int, block_size: int, bias: bool) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(_Block(n_embd, n_head, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.head = nn.Linear(n_embd, vocab, bias=False)
        self.head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))  # (B, T, V)


def lr_at(it: int, c: dict[str, Any]) -> float:
    """nanoGPT's schedule: linear warm-up, cosine decay to ``min_lr`` at ``lr_decay_iters``, then flat."""
    if it < c["warmup_iters"]:
        return c["lr"] * (it + 1) / (c["warmup_iters"] + 1)
    if it > c["lr_decay_iters"]:
        return c["min_lr"]
    ratio = (it - c["warmup_iters"]) / (c["lr_decay_iters"] - c["warmup_iters"])
    return c["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c["lr"] - c["min_lr"])


# ----------------------------------------------------------------------------- one evaluation for both


@torch.no_grad()
def whole_span_loss(logits_of: Any, val: Tensor, block: int = EVAL_BLOCK, batch: int = 256) -> float:
    """Mean NLL per character over every target of ``val``, in consecutive non-overlapping windows of ``block``."""
    n = (len(val) - 1) // block
    x = val[: n * block].view(n, block)
    y = val[1 : n * block + 1].view(n, block)
    total = 0.0
    for i in range(0, n, batch):
        logits = logits_of(x[i : i + batch]).float()
        total += float(F.cross_entropy(logits.flatten(0, 1), y[i : i + batch].flatten(), reduction="sum"))
    count = n * block
    rest = len(val) - 1 - count  # the targets after the last full window, as one shorter row
    if rest > 0:
        logits = logits_of(val[count : count + rest][None]).float()
        total += float(F.cross_entropy(logits[0], val[count + 1 : count + 1 + rest], reduction="sum"))
        count += rest
    return total / count


def corpus(data_dir: str | None) -> tuple[Tensor, Tensor, int]:
    """The characters of tiny Shakespeare as ids (sorted vocabulary), split 90/10 as nanoGPT's prepare.py does."""
    from archzoo.data.root import data_root

    text = (data_root(data_dir) / "text" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    itos = sorted(set(text))
    stoi = {c: i for i, c in enumerate(itos)}
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    cut = int(0.9 * len(ids))
    return ids[:cut], ids[cut:], len(itos)


def train_baseline(train: Tensor, val: Tensor, vocab: int, seed: int = 1337) -> dict[str, Any]:
    c = BASELINE
    torch.manual_seed(seed)
    model = BaselineGPT(vocab, c["n_layer"], c["n_head"], c["n_embd"], c["block_size"], c["bias"])
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": c["weight_decay"]}, {"params": rest, "weight_decay": 0.0}],
        lr=c["lr"],
        betas=(c["beta1"], c["beta2"]),
    )
    b, t = c["batch_size"], c["block_size"]
    curve: list[dict[str, float]] = []
    seconds = 0.0
    for it in range(c["max_iters"] + 1):
        if it % c["eval_interval"] == 0 or it == c["max_iters"]:
            model.eval()
            loss = whole_span_loss(model, val)
            model.train()
            curve.append({"seconds": round(seconds, 2), "iter": it, "val_loss": round(loss, 4)})
            print(f"baseline iter {it}: val {loss:.4f} at {seconds:.1f} s", flush=True)
        if it == c["max_iters"]:
            break
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(it, c)
        ix = torch.randint(len(train) - t, (b,))
        x = torch.stack([train[i : i + t] for i in ix])
        y = torch.stack([train[i + 1 : i + 1 + t] for i in ix])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        seconds += time.perf_counter() - t0
    return {
        "config": c,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 2),
        "final_val_loss": curve[-1]["val_loss"],
        "curve": curve,
    }


# ----------------------------------------------------------------------------- archzoo's side


def train_archzoo(recipe: str, overrides: list[str], data_dir: str | None, runs: Path) -> dict[str, Any]:
    from archzoo.config import load_config
    from archzoo.engine.run import load_run
    from archzoo.engine.trainer import Trainer
    from archzoo.utils import read_metrics

    cfg = load_config(recipe, None, [f"log.dir={runs}", "log.progress=lines", *overrides])
    trainer = Trainer(cfg, data_dir=data_dir)
    trainer.fit()
    summary = json.loads((trainer.run_dir / "results.json").read_text())
    rows = read_metrics(trainer.run_dir / "metrics.csv")
    curve = [
        {"seconds": round(r["time"], 2), "step": int(r["step"]), "val_loss": round(r["val/loss"], 4)}
        for r in rows
        if "val/loss" in r
    ]
    run = load_run(trainer.run_dir, data_dir=data_dir)
    net = run.model.eval()

    def logits_of(x: Tensor) -> Tensor:
        out = net(x)
        return out[0] if isinstance(out, tuple) else out

    _, val, _ = corpus(data_dir)
    return {
        "recipe": recipe,
        "overrides": overrides,
        "run_dir": str(trainer.run_dir),
        "parameters": summary["parameters"],
        "train_seconds": summary["train_seconds"],
        "steps": rows[-1]["step"] if rows else 0,
        "final_val_loss_64": round(whole_span_loss(logits_of, val), 4),
        "curve": curve,
    }


def first_at_or_below(curve: list[dict[str, float]], level: float) -> float | None:
    return next((p["seconds"] for p in curve if p["val_loss"] <= level), None)


def draw(baseline: dict[str, Any], sides: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    bc = baseline["curve"]
    ax.plot([p["seconds"] for p in bc], [p["val_loss"] for p in bc], marker="o", ms=3, label="nanoGPT-style loop")
    for label, side in sides.items():
        c = side["curve"]
        ax.plot([p["seconds"] for p in c], [p["val_loss"] for p in c], marker="s", ms=3, label=label)
    ax.axhline(baseline["final_val_loss"], color="gray", ls=":", lw=1, label="baseline's final val loss")
    ax.axvline(baseline["train_seconds"] / 2, color="tab:red", ls="--", lw=1, label="half the baseline's time")
    ax.set_xlabel("seconds of training")
    ax.set_ylabel("val loss (nats/char, whole span)")
    ax.set_ylim(top=min(3.0, ax.get_ylim()[1]))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="shakespeare-gpt")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir")
    p.add_argument("--runs", default="runs/benchmarks")
    p.add_argument("--stretch", type=float, default=2.0, help="schedule factor of the second archzoo training")
    p.add_argument("--baseline-only", action="store_true")
    a, overrides = p.parse_known_args()
    torch.set_num_threads(a.threads)
    train, val, vocab = corpus(a.data_dir)
    baseline = train_baseline(train, val, vocab)
    wall = baseline["train_seconds"]
    print(f"baseline: val {baseline['final_val_loss']:.4f} in {wall:.1f} s", flush=True)
    payload: dict[str, Any] = {"recipe": a.recipe, "threads": a.threads, "baseline": baseline}
    if a.baseline_only:  # a check of the baseline alone writes no result
        return
    from archzoo.config import load_config

    runs = Path(a.runs)
    common = [f"train.threads={a.threads}", *overrides]
    shipped = train_archzoo(a.recipe, [f"train.max_time={wall:.0f}", *common], a.data_dir, runs)
    steps = load_config(a.recipe, None, common).train.max_steps
    stretched_over = [f"train.max_time={wall:.0f}", "train.eval_every=100", "train.epochs=10", *common]
    if steps:
        stretched_over.append(f"train.max_steps={int(steps * a.stretch)}")
    stretched = train_archzoo(a.recipe, stretched_over, a.data_dir, runs)
    level = baseline["final_val_loss"]
    reached = first_at_or_below(shipped["curve"], level)
    ratio = None if reached is None else reached / wall
    best_in_wall = min([p["val_loss"] for p in stretched["curve"] if p["seconds"] <= wall * 1.02] or [math.inf])
    png = RESULTS / "nanogpt-shakespeare-curve.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    draw(baseline, {f"archzoo {a.recipe}": shipped, f"archzoo {a.recipe}, schedule ×{a.stretch:g}": stretched}, png)
    meets = ratio is not None and ratio <= 0.5
    when = "never" if reached is None else f"at {reached:.0f} s ({100 * ratio:.0f}% of the baseline's time)"
    payload.update(
        archzoo=shipped,
        archzoo_stretched=stretched,
        value=None if ratio is None else round(ratio, 3),
        unit="fraction of the baseline's wall-clock",
        target=0.5,
        meets_target=meets,
        anchor=NANOGPT_VAL,
        anchor_source="nanoGPT README, CPU shakespeare_char val loss",
        curve_png=png.name,
        summary=(
            f"nanoGPT-style loop (4×4×128, block 64, batch 12, 2000 iters): val {level:.3f} in {wall:.0f} s; "
            f"archzoo {a.recipe} reaches it {when}, ending at val {shipped['final_val_loss_64']:.3f} "
            f"(64-char windows) after {shipped['train_seconds']:.0f} s; with its schedule stretched ×{a.stretch:g} "
            f"its lowest val loss within {wall:.0f} s is {best_in_wall:.3f}; {a.threads} threads"
        ),
    )
    write_result("nanogpt-shakespeare", payload)


if __name__ == "__main__":
    main()
