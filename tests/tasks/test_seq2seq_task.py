"""The seq2seq task: loss over target tokens, exact match against a hand count, predict, a short training;
the helpers of benchmarks/seq2seq_quality.py."""

import importlib.util
import json
from pathlib import Path

import torch

from archzoo.cli import main
from archzoo.data.splits import PaddedBatch
from archzoo.models.seq2seq import Seq2Seq
from archzoo.tasks.seq2seq import Seq2SeqTask, exact_matches

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "seq2seq_quality.py"

INFO = {"tgt_itos": ["<pad>", "<bos>", "<eos>", "a", "b"], "src_itos": ["<pad>", "<bos>", "<eos>", "a", "b"],
        "pad_id": 0, "bos_id": 1, "eos_id": 2, "level": "char", "max_tgt_len": 4}  # fmt: skip


def test_exact_match_by_hand() -> None:
    y = torch.tensor([[3, 4, 2], [3, 2, 0], [4, 2, 0], [3, 3, 2]])
    lengths = torch.tensor([3, 2, 2, 3])
    pred = torch.tensor([
        [3, 4, 2, 0],  # right
        [3, 2, 4, 4],  # right: what follows <eos> does not count
        [4, 4, 2, 0],  # wrong: no <eos> where the target has it
        [3, 3, 0, 0],  # wrong: stops without <eos>
    ])  # fmt: skip
    assert exact_matches(pred, y, lengths, 2).tolist() == [True, True, False, False]
    assert exact_matches(pred[:, :1], y, lengths, 2).tolist() == [False] * 4  # too short


class _Fixed(torch.nn.Module):
    """Answers every source with the given ids (one-hot logits), for a hand count of the metrics."""

    def __init__(self, answer: torch.Tensor) -> None:
        super().__init__()
        self.answer = answer
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, batch: PaddedBatch) -> torch.Tensor:
        ly = batch.y.shape[1]
        return torch.nn.functional.one_hot(self.answer[:, :ly], 5).float() * 10 + self.w

    def greedy(self, src, src_lengths, max_len):
        return self.answer, torch.zeros(*self.answer.shape, src.shape[1])


def test_metrics_count_by_hand() -> None:
    task = Seq2SeqTask()
    task.setup(torch.nn.Linear(1, 1), INFO, torch.device("cpu"))
    y = torch.tensor([[3, 4, 2], [3, 2, 0], [4, 2, 0]])
    batch = PaddedBatch(torch.tensor([[3], [4], [3]]), torch.tensor([1, 1, 1]), y, torch.tensor([3, 2, 2]))
    model = _Fixed(torch.tensor([[3, 4, 2], [3, 2, 3], [3, 2, 0]]))
    assert int(task.count(batch)) == 7
    task.eval_step(model, batch, "val")
    out = task.compute("val")
    assert abs(out["val/exact"] - 2 / 3) < 1e-9
    assert abs(out["val/acc"] - 6 / 7) < 1e-9
    assert task.compute("val") == {}  # reset


def test_bleu_and_predict() -> None:
    torch.manual_seed(0)
    task = Seq2SeqTask(bleu=True)
    assert task.monitor == "val/bleu"
    info = dict(INFO, level="word")
    task.setup(torch.nn.Linear(1, 1), info, torch.device("cpu"))
    y = torch.tensor([[3, 4, 3, 4, 2]])
    batch = PaddedBatch(torch.tensor([[3]]), torch.tensor([1]), y, torch.tensor([5]))
    task.eval_step(_Fixed(y.clone()), batch, "val")
    assert abs(task.compute("val")["val/bleu"] - 100.0) < 1e-6
    model = Seq2Seq(5, 5, embed_dim=4, hidden_size=6)
    task = Seq2SeqTask()
    task.setup(model, INFO, torch.device("cpu"))
    inputs = ["ab", "bba"]
    lines = task.describe(task.predict(model, task.read_inputs(inputs, INFO)), inputs, INFO)
    assert [line.split("\t")[0] for line in lines] == inputs


def test_reverse_recipe_trains_end_to_end(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    args = ["train", "reverse-gru", "train.epochs=1", "data.args.n=300", "data.args.n_val=40", "data.args.n_test=40",
            "model.args.hidden_size=16", "model.args.embed_dim=8", "log.progress=none", "--run-dir", str(run)]  # fmt: skip
    assert main(args) == 0
    rows = (run / "metrics.csv").read_text().splitlines()
    assert "val/exact" in rows[0]
    capsys.readouterr()
    assert main(["predict", str(run), "abcde"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("abcde\t")
    assert json.loads((run / "info.json").read_text())["kind"] == "seq2seq"
    assert (run / "attention.png").is_file()  # the task's picture of the probe's attention
    assert main(["viz", "attention", str(run), "abcdef", "--out", str(tmp_path / "att")]) == 0
    assert (tmp_path / "att" / "attention_abcdef.png").is_file()
    # the benchmark re-opens the run and decodes it greedily (the run's own figures) and with a beam
    decoded = _benchmark().decoded(run, "test", [1, 3])
    tested = json.loads((run / "results.json").read_text())["metrics"]
    assert decoded["1"]["test/exact"] == tested["test/exact"] and 0.0 <= decoded["3"]["test/exact"] <= 1.0


def _benchmark():
    spec = importlib.util.spec_from_file_location("archzoo_benchmarks_seq2seq", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_trains_the_comparison_setting_with_both_models() -> None:
    b = _benchmark()
    assert b.plan("reverse") == [("attention", []), ("no_attention", [b.NO_ATTENTION])]  # shipped already fails
    compare = b.TASKS["sort"][3]
    assert compare and b.plan("sort") == [
        ("attention", []), ("comparison_attention", compare), ("no_attention", [*compare, b.NO_ATTENTION])
    ]  # fmt: skip

    def row(value: float, greedy: float, beam: float) -> dict:
        return {"value": value, "decoding": {"1": {"test/exact": greedy}, "5": {"test/exact": beam}}}

    rows = {"attention": row(1.0, 1.0, 1.0), "comparison_attention": row(0.97, 0.97, 0.98),
            "no_attention": row(0.4, 0.4, 0.45)}  # fmt: skip
    p = b.summarize("sort", rows, 5)
    assert p["value"] == 1.0 and p["meets_target"] is True and p["no_attention_value"] == 0.4
    assert p["comparison"] == {"overrides": compare, "is_shipped": False, "attention": 0.97, "no_attention": 0.4,
                               "no_attention_fails": True}  # fmt: skip
    assert p["decoding"]["comparison_attention"] == {"greedy": 0.97, "beam": 0.98}
    # reverse compares at its shipped setting (the model without attention fails there already).
    shipped = b.summarize("reverse", {"attention": row(0.999, 0.999, 1.0), "no_attention": row(0.98, 0.98, 0.98)}, 5)
    assert shipped["meets_target"] is False and shipped["comparison"]["attention"] == 0.999
    assert shipped["comparison"]["is_shipped"] and shipped["comparison"]["no_attention_fails"] is False
