"""Regenerate the results tables of README.md and docs/*.md from ``benchmarks/results/*.json``.

Every table lies between ``<!-- results:start -->`` and ``<!-- results:end -->`` and is
never edited by hand: run ``python benchmarks/report.py``. ``--check`` writes nothing and
exits 1, naming the file, when a table differs from what the JSON files give (the test
suite runs it, so the pages cannot drift from the results).

Where each result goes:

* **Family page.** Every result has one row in the page of its family, chosen by its
  benchmark name (``PAGES``): ``seq2seq-*`` in ``docs/sequences.md``, ``recipe-*`` in
  ``docs/vision.md``, ``generative-*`` in ``docs/generative.md``, the speed benchmarks (``engine_overhead``, ``precision``,
  ``channels_last``, ``cnn_throughput``, ``time_to_accuracy*``, ``toolkit_tuning-*``, ``keras_parity-*``,
  ``grad_checkpointing``) and the recipes of the
  engine's data-kind consumers (``python-lstm``, ...) in ``docs/engine.md``; ``seq2seq-*``,
  ``forecast-*``, ``ode-*``, ``lm-*``, ``textcls-*``, ``rnn_throughput``, ``convlstm-moving`` and the text recipes in ``docs/sequences.md``;
  ``planetoid-*``, ``gnn_speed``, ``molecule-*``, ``tu-*``, ``entities-*``, ``vgae-*``, ``graphgen-*`` and
  ``recipe-graph-*`` in ``docs/graphs.md``; ``gpt-*``, ``gpt_generation*``, ``gpt_throughput*``,
  ``nanogpt-*``, ``bert-*``, ``minilm-*``, ``vit-*``, ``long_attention*`` and ``tfseq2seq-*`` in
  ``docs/transformers.md``; ``kill_resume*`` in ``docs/reliability.md``.
  A result that no page claims is an error.
* **README.** Only headlines: one row per recipe or benchmark. A result is a *detail*,
  not a headline, when its benchmark name is another result's name followed by
  ``-<label>`` and it measures the same recipe as that one (or that one names no recipe:
  a summary over several). Details are the per-model parts beside a summary
  (``generative-frechet-dcgan`` beside ``generative-frechet``), other settings or earlier
  trainings of the same recipe (``generative-frechet-ddpm-2ep-g2``,
  ``generative-frechet-wgan_gp-20ep``, ``-raw``) and second settings of a speed figure
  (``time_to_accuracy-2threads``). ``time_to_accuracy-fashion-resnet`` times another
  recipe than ``time_to_accuracy`` and is a headline, as are ``time_to_accuracy-speedrun`` and
  ``time_to_accuracy-mnist-speedrun`` (the speedrun recipes against the tutorials' SimpleCNN,
  whose ``-<label>`` settings, such as ``-1thread``, are their details).

Every row keeps its "measured on" column: the machine, its threads and load, and the date.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, describe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- results:start -->", "<!-- results:end -->"
HEADER = [
    "| benchmark | result | target | anchor | meets target | measured on |",
    "| --- | --- | --- | --- | --- | --- |",
]
# Family page -> the benchmark names (exact, or a prefix ending in "-" or "*") it holds.
# The first page that claims a name holds it.
PAGES: dict[str, tuple[str, ...]] = {
    "docs/transformers.md": (
        "gpt-", "gpt_generation*", "gpt_throughput*", "nanogpt-", "bert-", "minilm-", "vit-",
        "long_attention*", "tfseq2seq-",
    ),
    "docs/sequences.md": (
        "seq2seq-", "forecast-", "rnn_throughput", "convlstm-moving", "lm-", "ode-",
        "recipe-shakespeare-lstm", "recipe-ptb-lstm", "recipe-dates-lstm",
        "textcls-", "recipe-sum10-lstm",
    ),
    # The consumers of each kind of data the engine takes, until their families have pages.
    "docs/engine.md": (
        "engine_overhead", "precision", "channels_last", "cnn_throughput", "time_to_accuracy*",
        "recipe-python-lstm", "recipe-parity-gru", "recipe-shapes-gcn", "recipe-karate-gcn", "recipe-sine-mlp",
        "toolkit_tuning-",
        "keras_parity-",
        "grad_checkpointing",
        "stream_memory",
    ),
    # Graph benchmarks come before vision's catch-all "recipe-".
    "docs/graphs.md": (
        "planetoid-", "gnn_speed", "molecule-", "tu-", "entities-", "vgae-", "graphgen-", "recipe-graph-",
    ),
    "docs/vision.md": ("recipe-",),
    "docs/generative.md": ("generative-",),
    "docs/reliability.md": ("kill_resume*",),
}  # fmt: skip


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def _verdict(ok: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "–"}[ok]


def row(r: dict[str, Any]) -> str:
    """The table row of one result."""
    where = f"{describe(r['machine'])}, {r['date']}"
    name = r["benchmark"]
    if name.startswith("recipe-") and r["metric"].endswith("/nrmse"):  # RMSE as a share of the targets' std
        split = r["metric"].split("/")[0]
        rmse = r["metrics"][f"{split}/rmse"]
        cut = " (stopped by train.max_time)" if r.get("stopped_for_time") else ""
        detail = (
            f"{r['recipe']}: {split}/rmse {rmse:.4f}, {_pct(r['value'])} of the {split} targets' std "
            f"{rmse / r['value']:.2f}, {r['parameters']:,} params, {r['epochs_run']} epochs{cut}, "
            f"{r['train_seconds']:.0f} s"
        )
        target = "–" if r.get("target") is None else f"≤ {_pct(r['target'])} of std"
        return f"| {detail} | {_pct(r['value'])} of std | {target} | – | {_verdict(r.get('meets_target'))} | {where} |"
    if name.startswith("recipe-"):
        metric = r["metric"]
        is_acc = metric.endswith(("acc", "exact"))
        value = _pct(r["value"]) if is_acc else f"{r['value']:.2f}"
        target = (f"≥ {_pct(r['target'])}" if is_acc else f"≤ {r['target']}") if r.get("target") is not None else "–"
        anchor = f"{_pct(r['anchor'])} ({r['anchor_source']})" if r.get("anchor") else "–"
        seeds = r.get("seeds") or [0]
        over = f" (mean of seeds {', '.join(map(str, seeds))})" if len(seeds) > 1 else ""
        cut = " (stopped by train.max_time)" if r.get("stopped_for_time") else ""
        if "input_size" in r:  # results that state their stem, input size and planned epochs (issue 18)
            stem = f"{r['stem']} stem, " if r.get("stem") else ""
            ran = f" of {r['epochs']}" if r["epochs_run"] != r["epochs"] else ""
            shape = f"{stem}input {r['input_size']}, {r['epochs_run']}{ran} epochs{cut}"
        else:
            shape = f"{r['epochs_run']} epochs{cut}"
        detail = (
            f"{r['recipe']}: {metric} {value}{over}, {r['parameters']:,} params, {shape}, {r['train_seconds']:.0f} s"
        )
        return f"| {detail} | {value} | {target} | {anchor} | {_verdict(r.get('meets_target'))} | {where} |"
    if name.startswith("planetoid-"):
        seeds = r["seeds"]
        anchor = f"{r['anchor']:.1f}% ({r['anchor_source']})" if r.get("anchor") is not None else "–"
        target = f"≥ {r['target']:.1f}%" if r.get("target") is not None else "–"
        chosen = {"val/acc": "best validation accuracy", "val/loss": "lowest validation loss"}
        by = chosen.get(r.get("monitor", "val/acc"), r.get("monitor"))
        over = f" with {' '.join(r['overrides'])}" if r.get("overrides") else ""
        detail = (
            f"{r['recipe']}{over}: test accuracy at the epoch of {by}, mean ± std of "
            f"{len(seeds)} seeds ({seeds[0]}–{seeds[-1]}): {r['mean']:.2f} ± {r['std']:.2f}% "
            f"(min {min(r['per_seed']):.1f}, max {max(r['per_seed']):.1f}), {r['parameters']:,} params, "
            f"{r['mean_epochs_run']:.0f} epochs, {r['mean_train_seconds']:.1f} s per run"
        )
        return (
            f"| {detail} | {r['mean']:.2f} ± {r['std']:.2f}% | {target} | {anchor} "
            f"| {_verdict(r.get('meets_target'))} | {where} |"
        )
    if name == "gnn_speed":
        detail = (
            f"Cora GCN epoch time, {r['recipe']} through the engine vs a plain PyG loop in the style of "
            f"examples/gcn.py ({r['epochs']} epochs, validation every epoch, median of {r['repeats']} "
            f"repeats): {r['archzoo_ms_per_epoch']:.1f} vs {r['plain_ms_per_epoch']:.1f} ms/epoch "
            f"(archzoo's model in a bare loop {r['bare_ms_per_epoch']:.1f}, so the engine adds "
            f"{r['engine_ms_per_epoch']:.1f}); "
            f"test accuracy {100 * r['archzoo_test_acc']:.2f}% vs {100 * r['plain_test_acc']:.2f}% "
            f"(mean of the repeats, gap {r['acc_gap_points'] + 0.0:+.2f} points)"
        )
        return (
            f"| {detail} | ratio {r['ratio']:.3f} | ≤ {r['target']}, accuracy within 0.5 points | – "
            f"| {_verdict(r['meets_target'])} | {where} |"
        )
    if name.startswith("lm-"):
        metric = r["metric"]
        cut = ", stopped by the budget" if r.get("stopped_for_time") else ""
        detail = (
            f"{r['recipe']}: {metric} {r['value']:.2f} ({r['parameters']:,} params, {r['epochs_run']} epochs, "
            f"{r['train_seconds']:.0f} s{cut}) within a budget of {r['reference_budget_s'] / 60:.0f} min at "
            f"{r['reference_gflops']:.0f} GFLOP/s, scaled to {r['budget_s'] / 60:.1f} min by this machine's "
            f"{r['matmul_peak_gflops']:.0f} GFLOP/s matmul peak ({r['matmul_peak_after_gflops']:.0f} after); "
            f"curve in results/{r['curve_png']}"
        )
        return (
            f"| {detail} | {r['value']:.2f} | ≤ {r['target']} within budget | – "
            f"| {_verdict(r['meets_target'])} | {where} |"
        )
    if name == "convlstm-moving":
        m = r["mse"]
        args = r.get("model_args") or {}
        size = ""
        if args:
            size = f"{'×'.join(map(str, args.get('hidden_channels', [])))} channels, {args.get('patch', 1)}×{args.get('patch', 1)} patches, "
        desc = (
            f"convlstm-moving: next 32×32 frame of two bouncing Fashion-MNIST items ({size}{r['parameters']:,} params, "
            f"{r['epochs']} epochs, {r['train_seconds']:.0f} s): test MSE per pixel ConvLSTM {m['convlstm']:.4f}, "
            f"copy the last frame {m['copy_last']:.4f}, empty frame {m['empty']:.4f}"
        )
        return (
            f"| {desc} | {r['ratio_to_better_baseline']:.2f}× the better baseline | ≤ 0.5× | – "
            f"| {_verdict(r['meets_target'])} | {where} |"
        )
    if name.startswith("forecast-"):
        res = r["results"]
        h = r["setup"]["horizon"]
        what = "one-step forecasts" if h == 1 else f"one {h}-step direct forecast"
        test = r["setup"]["test_len"]
        parts = [f"LSTM {res['neural']['rmse']:.2f}"]
        parts += [f"{res['arima']['model']} {res['arima']['rmse']:.2f}", f"naive {res['naive']['rmse']:.2f}"]
        parts.append(f"seasonal naive {res['seasonal_naive']['rmse']:.2f}")
        mase = f"MASE LSTM {res['neural']['mase']:.2f} vs {res['arima']['mase']:.2f}"
        desc = f"forecast-{r['series']}: {what} of the last {test} steps, RMSE: {', '.join(parts)}; {mase}"
        return (
            f"| {desc} | RMSE {res['neural']['rmse']:.2f} | below naive and ARIMA | – "
            f"| {_verdict(r['meets_target'])} | {where} |"
        )
    if name.startswith("ode-"):
        res, st = r["results"], r["setup"]

        def fit(k: str, label: str) -> str:
            x = res[k]
            cut = ", stopped by train.max_time" if x["stopped_for_time"] else ""
            return (
                f"{label} {x['interp_mse']:.3f} / {x['extrap_mse']:.3f} ({x['parameters']:,} params, "
                f"{x['epochs_run']} epochs, {x['train_seconds']:.0f} s{cut})"
            )

        mean = res["train_mean"]
        desc = (
            f"ode-{r['series']}: {st['observed_min']}–{st['observed']} of {st['window']} points observed, "
            f"{st['extrapolate']} after the window; test MSE interpolation / extrapolation ({r['scale']}): "
            f"{fit('odernn', 'ODE-RNN')}, {fit('grudt', 'GRU-Δt')}, training mean "
            f"{mean['interp_mse']:.3f} / {mean['extrap_mse']:.3f}"
        )
        ode = res["odernn"]
        value = f"ODE-RNN {ode['interp_mse']:.3f} / {ode['extrap_mse']:.3f}"
        return f"| {desc} | {value} | – | – | {_verdict(r.get('meets_target'))} | {where} |"
    if name.startswith("seq2seq-"):
        metric = r["metric"]

        def shown(v: float | None) -> str:
            return "–" if v is None else (f"{v:.2f}" if metric.endswith("bleu") else _pct(v))

        rows, decoding, k = r["rows"], r.get("decoding", {}), r.get("beam")

        def both(label: str, value: float | None) -> str:  # greedy (the row's figure) and beam search
            b = decoding.get(label, {}).get("beam")
            return f"greedy {shown(value)} / beam {k} {shown(b)}" if k and b is not None else shown(value)

        def size(x: dict[str, Any]) -> str:
            return f"{x['parameters']:,} params, {x['epochs_run']} epochs, {x['train_seconds']:.0f} s"

        att, plain = rows["attention"], rows["no_attention"]
        cut = " (stopped by train.max_time)" if any(x.get("stopped_for_time") for x in rows.values()) else ""
        detail = f"{r['recipe']}: {metric} with attention {both('attention', r['value'])} ({size(att)}); "
        cmp = r.get("comparison") or {}
        if cmp.get("overrides"):  # the pair at a setting where the model without attention fails
            setting = " ".join(o.split(".")[-1] for o in cmp["overrides"])
            with_att = rows["comparison_attention"]
            detail += (
                f"at {setting}: with {both('comparison_attention', cmp['attention'])} ({size(with_att)}), "
                f"without {both('no_attention', cmp['no_attention'])} ({size(plain)}){cut}"
            )
        else:
            detail += f"without {both('no_attention', r['no_attention_value'])} ({size(plain)}){cut}"
        target = "–" if r.get("target") is None else f"≥ {shown(r['target'])}"
        return f"| {detail} | {shown(r['value'])} | {target} | – | {_verdict(r.get('meets_target'))} | {where} |"
    if name.startswith("textcls-"):
        rnn, base = r["rnn"], r["baseline"]
        b = base["test"]
        pos = "spam" if r["task"] == "sms" else None
        spam = f", spam F1 {rnn['f1'][pos]:.3f} vs {b['f1'][pos]:.3f}" if pos else ""
        cut = " (stopped by train.max_time)" if r.get("stopped_for_time") else ""
        feats = "word 1-2-gram" if base["analyzer"] == "word" else f"{base['analyzer']} 1-4-gram"
        detail = (
            f"{r['recipe']} vs {feats} TF-IDF + logistic regression (C={base['C']:.3g} by val) on the same "
            f"{r['sizes']['test']:,} test texts: acc {_pct(rnn['acc'])} vs {_pct(b['acc'])}, macro-F1 "
            f"{rnn['macro_f1']:.3f} vs {b['macro_f1']:.3f}{spam} ({r['parameters']:,} params, "
            f"{r['epochs_run']} epochs{cut}, {r['train_seconds']:.0f} s)"
        )
        if pos:
            value, target = f"spam F1 {r['value']:.3f}", f"≥ {r['target']}"
        else:
            value, target = f"acc {_pct(r['value'])}", f"> {_pct(r['target'])} (the baseline)"
        return f"| {detail} | {value} | {target} | – | {_verdict(r['meets_target'])} | {where} |"
    if name == "engine_overhead":
        per = "; ".join(
            f"{x['recipe']} {x['archzoo_ms_per_step']} vs {x['raw_ms_per_step']} ms/step" for x in r["rows"]
        )
        return (
            f"| engine overhead vs raw PyTorch loop ({per}) | ratio {r['ratio']:.3f} | ≤ {r['target']} | – "
            f"| {_verdict(r['meets_target'])} | {where} |"
        )
    if name == "rnn_throughput":
        e, lay = r["engine"], r["layer"]
        detail = (
            f"LSTM LM training tokens/s through the engine vs a raw loop ({e['recipe']}: "
            f"{e['archzoo_tokens_per_s']:,} vs {e['raw_tokens_per_s']:,}); one LSTM layer fwd+bwd "
            f"(B {lay['batch_size']}, T {lay['steps']}, H {lay['hidden_size']}): fused nn.LSTM "
            f"{lay['fused_tokens_per_s']:,} vs written-out cells {lay['cells_tokens_per_s']:,} tokens/s "
            f"({lay['cells_over_fused']:.2f}×)"
        )
        return f"| {detail} | ratio {r['ratio']:.3f} | ≥ {r['target']} | – | {_verdict(r['meets_target'])} | {where} |"
    if name.startswith("kill_resume"):
        per = "; ".join(
            f"{x['recipe']} {x['kills']} kills ({x['kills_in_writes']} inside writes), {x['resumes']} resumes, "
            + ("bitwise equal" if x["bitwise_equal"] else "**not bitwise equal**")
            + (", metrics rows equal" if x.get("metrics_rows_equal") else ", **metrics rows differ**")
            for x in r["recipes"]
        )
        detail = (
            f"SIGKILL at {r['kills_per_recipe']} random moments per recipe, resumed each time "
            f"({'fresh' if r['launcher'] == 'spawn' else 'forked'} processes, seed {r['seed']}): {per}"
        )
        value = f"{r['unreadable_checkpoints']} unreadable, {r['kills_in_writes']} of {r['kills']} kills inside writes"
        return f"| {detail} | {value} | 0 unreadable, all bitwise equal | – | {_verdict(r['meets_target'])} | {where} |"
    if name.startswith("time_to_accuracy") and "speedup" not in r:  # the speedrun against the tutorials' SimpleCNN
        return _speedrun_row(r, where)
    if name.startswith("time_to_accuracy"):  # the earlier form: one seed, the recipe's own model on both sides
        az, tut = r["archzoo"], r["tutorial"]
        bound = "≥ " if r.get("speedup_is_lower_bound") else ""
        sp = f"{bound}{r['speedup']}×" if r.get("speedup") else "not reached"
        missed = " (gave up, not reached)" if tut.get("gave_up") else " (never reached)"
        ne_az, ne_tut = len(az["history"]), len(tut["history"])
        # How much of the speedup is per-epoch speed (engine, batch size) and how much is fewer epochs.
        per_epoch = (tut["seconds"] / ne_tut) / (az["seconds"] / ne_az) if ne_az and ne_tut else None
        settings = f" with {' '.join(r['overrides'])}" if r.get("overrides") else ""
        detail = (
            f"{r['model']}, same model both sides: time to {_pct(r['threshold'])} Fashion-MNIST test, "
            f"{r['recipe']}{settings}, seed 0, training time only: archzoo "
            f"{az['seconds']:.1f} s in {ne_az} epochs vs tutorial loop (Adam 1e-3, batch 64) "
            f"{tut['seconds']:.1f} s in {ne_tut} epochs{'' if tut['reached'] else missed}"
            + (f"; per epoch {per_epoch:.2f}× faster" if per_epoch else "")
        )
        return f"| {detail} | {sp} | ≥ {r['target']}× | – | {_verdict(r['meets_target'])} | {where} |"
    summary = r.get("summary", "")
    value, target = r.get("value", "–"), r.get("target", "–")
    target = "–" if target is None else target  # a result reported beside a target-less figure
    if r.get("unit") == "percent":  # a mean ± std of accuracies (entities-*)
        if isinstance(value, (int, float)) and "std" in r:
            value = f"{r['mean']:.2f} ± {r['std']:.2f}%"
        if isinstance(target, (int, float)):
            target = f"≥ {target:.2f}%"
    return f"| {name}: {summary} | {value} | {target} | {_anchor(r)} | {_verdict(r.get('meets_target'))} | {where} |"


def _speedrun_row(r: dict[str, Any], where: str) -> str:
    """A time_to_accuracy result over seeds: each side's mean seconds, its epochs per seed, and the ratio."""
    data = {"fashion": "Fashion-MNIST", "mnist": "MNIST"}[r["dataset"]]

    def epochs(runs: list[dict[str, Any]]) -> str:
        return "/".join(str(len(x["history"])) + ("" if x["reached"] else "+") for x in runs)

    def setup(runs: list[dict[str, Any]]) -> float:
        return sum(x["setup_seconds"] for x in runs) / len(runs)

    az, tut = r["archzoo"], r["tutorial"]
    missed = [str(x["seed"]) for x in tut if not x["reached"]]
    cap = (
        f"; tutorial seed {', '.join(missed)} not there after {r['max_epochs']} epochs (counted at the cap)"
        if missed
        else ""
    )
    detail = (
        f"time to {_pct(r['threshold'])} {data} test, mean of seeds {', '.join(map(str, r['seeds']))}, training plus "
        f"per-epoch test evaluation: archzoo {r['recipe']} ({r['model']}, {r['parameters']:,} params) "
        f"{r['archzoo_seconds']:.1f} s (epochs {epochs(az)}) vs the tutorial loop ({r['tutorial_model']}, "
        f"{r['tutorial_parameters']:,} params; torchvision, DataLoader batch 64, Adam 1e-3) {r['tutorial_seconds']:.1f} s "
        f"(epochs {epochs(tut)}){cap}; not counted: data loading {setup(az):.1f} s vs {setup(tut):.1f} s, imports "
        f"{r['process_start_seconds']:.1f} s"
    )
    value = "not reached by archzoo" if r["value"] is None else f"{'≥ ' if r['lower_bound'] else ''}{r['value']}×"
    target = f"≥ {r['target']}× (stretch {r['stretch_target']}×)"
    return f"| {detail} | {value} | {target} | – | {_verdict(r['meets_target'])} | {where} |"


def _anchor(r: dict[str, Any]) -> str:
    """The published figure a result stands beside, with its source, or "–"."""
    src = r.get("anchor_source")
    a = r.get("anchor", r.get("anchor_acc"))
    if a is None or not src:
        return "–"
    if isinstance(a, dict):  # several metrics: {"auc": 0.914, "ap": 0.926}
        shown = ", ".join(f"{k.upper()} {v}" for k, v in a.items())
    elif r.get("unit") == "percent" or "anchor_acc" in r:
        shown = f"{a:.2f}%" + (f" ± {r['anchor_std']}" if "anchor_std" in r else "")
    else:
        shown = f"{a}"
    return f"{shown} ({src})"


def load(results_dir: Path = RESULTS) -> list[dict[str, Any]]:
    """Every result, in the order of its file name."""
    return [json.loads(f.read_text()) for f in sorted(results_dir.glob("*.json"))]


def page_of(name: str) -> str:
    """The family page that holds benchmark ``name``."""
    for page, patterns in PAGES.items():
        for p in patterns:
            if name == p.rstrip("*") or (p.endswith(("-", "*")) and name.startswith(p.rstrip("*"))):
                return page
    raise SystemExit(f"benchmark '{name}' belongs to no page; add it to PAGES in benchmarks/report.py")


def is_detail(r: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> bool:
    """Whether ``r`` extends another result's name by ``-<label>`` and measures that result's recipe."""
    name = r["benchmark"]
    for other, o in by_name.items():
        if other != name and name.startswith(f"{other}-") and o.get("recipe") in (None, r.get("recipe")):
            return True
    return False


def tables(results: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The table of README.md and of every family page, keyed by path relative to the repository."""
    by_name = {r["benchmark"]: r for r in results}
    out: dict[str, list[str]] = {"README.md": list(HEADER), **{p: list(HEADER) for p in PAGES}}
    for r in results:
        line = row(r)
        out[page_of(r["benchmark"])].append(line)
        if not is_detail(r, by_name):
            out["README.md"].append(line)
    return out


def with_table(text: str, table: list[str], path: str) -> str:
    """``text`` with the part between the markers replaced by ``table``."""
    if START not in text or END not in text:
        raise SystemExit(f"{path} lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n" + "\n".join(table) + f"\n{END}{tail}"


def sync(root: Path = ROOT, results_dir: Path = RESULTS, check: bool = False) -> list[str]:
    """Write (or with ``check``, compare) every table; return the paths whose table differs."""
    stale = []
    for rel, table in tables(load(results_dir)).items():
        path = root / rel
        old = path.read_text()
        new = with_table(old, table, rel)
        if new == old:
            continue
        stale.append(rel)
        if check:
            diff = difflib.unified_diff(old.splitlines(), new.splitlines(), f"{rel} (committed)", f"{rel} (from JSON)")
            print("\n".join(list(diff)[:40]), file=sys.stderr)
        else:
            path.write_text(new)
            print(f"wrote {rel}")
    return stale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table differs from the JSON")
    a = p.parse_args(argv)
    stale = sync(check=a.check)
    if a.check and stale:
        print(
            f"{', '.join(stale)}: the results table is not what benchmarks/results/*.json gives; "
            "run python benchmarks/report.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
