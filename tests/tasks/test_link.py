"""Link prediction: the edge split, the negatives, the metrics and the task on tiny hand-built graphs."""

from __future__ import annotations

import pytest
import torch

from archzoo.data.links import link_split
from archzoo.errors import UserError
from archzoo.tasks.link import LinkPrediction, link_metrics


def _graph(n: int = 30):
    """A ring of ``n`` nodes plus chords i -- i+3 for even i: 45 undirected edges for n=30."""
    from torch_geometric.data import Data

    edges = {(i, (i + 1) % n) for i in range(n)} | {(i, (i + 3) % n) for i in range(0, n, 2)}
    e = torch.tensor(sorted((min(a, b), max(a, b)) for a, b in edges)).T  # (2, E)
    return Data(
        x=torch.randn(n, 4, generator=torch.Generator().manual_seed(0)), edge_index=torch.cat([e, e.flip(0)], 1)
    )


def _pairs(ei: torch.Tensor) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in ei.T.tolist()}


def test_split_is_disjoint_covers_every_edge_and_has_the_sizes():
    data = _graph()
    bundle = link_split(data, 0.1, 0.2, seed=3)
    full = _pairs(data.edge_index)
    assert len(full) == 45
    tr, va, te = (_pairs(s.pos) for s in (bundle.train, bundle.val, bundle.test))
    assert (len(va), len(te)) == (4, 9)  # int(45 * 0.1), int(45 * 0.2)
    assert len(tr) == 45 - 4 - 9
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == full
    assert bundle.info["split_edges"] == [32, 4, 9]


def test_message_passing_uses_training_edges_only_in_every_split():
    data = _graph()
    bundle = link_split(data, 0.1, 0.2, seed=3)
    train_pos = _pairs(bundle.train.pos)
    for split in (bundle.train, bundle.val, bundle.test):
        batch = next(split.batches(1))
        mp = batch.edge_index
        assert _pairs(mp) == train_pos  # no validation or test edge is propagated over
        assert mp.size(1) == 2 * len(train_pos)  # both directions


def test_negatives_are_non_edges_fixed_for_eval_and_redrawn_per_epoch_for_training():
    data = _graph()
    bundle = link_split(data, 0.1, 0.2, seed=3)
    full = _pairs(data.edge_index)
    for split in (bundle.val, bundle.test):
        neg = next(split.batches(1)).neg_edge_label_index
        assert neg.size(1) == split.pos.size(1)
        assert not (_pairs(neg) & full)  # non-edges of the whole graph
        assert (neg[0] != neg[1]).all()
        assert torch.equal(neg, next(split.batches(1, epoch=5)).neg_edge_label_index)  # fixed
    train_edges = _pairs(bundle.train.pos)
    e0 = next(bundle.train.batches(1, seed=1, epoch=0)).neg_edge_label_index
    e0_again = next(bundle.train.batches(1, seed=1, epoch=0)).neg_edge_label_index
    e1 = next(bundle.train.batches(1, seed=1, epoch=1)).neg_edge_label_index
    assert e0.size(1) == bundle.train.pos.size(1)
    assert not (_pairs(e0) & train_edges) and not (_pairs(e1) & train_edges)
    assert torch.equal(e0, e0_again)  # a function of (seed, epoch): resume sees the same pairs
    assert not torch.equal(e0, e1)
    assert list(bundle.train.batches(1, start=1)) == []


def test_the_split_and_the_negatives_leave_the_global_streams_alone():
    import random

    data = _graph()
    torch.manual_seed(11)
    random.seed(11)
    bundle = link_split(data, 0.1, 0.2, seed=3)
    next(bundle.train.batches(1, seed=2, epoch=4))
    after = (torch.rand(1), random.random())
    torch.manual_seed(11)
    random.seed(11)
    assert after == (torch.rand(1), random.random())


def test_the_split_is_seeded():
    data = _graph()
    a, b, c = link_split(data, 0.1, 0.2, seed=3), link_split(data, 0.1, 0.2, seed=3), link_split(data, 0.1, 0.2, seed=4)
    assert torch.equal(a.test.pos, b.test.pos) and torch.equal(a.test.neg, b.test.neg)
    assert not torch.equal(a.test.pos, c.test.pos)


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.1), (0.1, 1.0), (0.5, 0.5), (-0.1, 0.1)])
def test_bad_fractions_are_refused(val, test):
    with pytest.raises(UserError):
        link_split(_graph(), val, test)


def test_a_graph_too_small_or_directed_is_refused():
    from torch_geometric.data import Data

    tiny = Data(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 0]]))
    with pytest.raises(UserError, match="too few"):
        link_split(tiny, 0.05, 0.1)
    directed = Data(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(UserError, match="undirected"):
        link_split(directed, 0.05, 0.1)
    out_of_range = Data(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 5], [5, 0]]))
    with pytest.raises(UserError, match="outside"):
        link_split(out_of_range, 0.05, 0.1)


def test_metrics_of_perfect_reversed_and_hand_counted_scorers():
    pos, neg = torch.tensor([3.0, 2.0, 5.0]), torch.tensor([-1.0, 0.0, 1.0, 1.5])
    assert link_metrics(pos, neg) == {"auc": 1.0, "ap": 1.0}
    assert link_metrics(-pos, -neg)["auc"] == 0.0
    # pos {0.9, 0.4}, neg {0.5, 0.1}: 3 of the 4 (pos, neg) pairs ordered right, so AUC 0.75;
    # ranked 0.9+ 0.5- 0.4+ 0.1-: precision 1 at recall 1/2, 2/3 at recall 1, AP = (1 + 2/3) / 2.
    m = link_metrics(torch.tensor([0.9, 0.4]), torch.tensor([0.5, 0.1]))
    assert m["auc"] == pytest.approx(0.75)
    assert m["ap"] == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(UserError):
        link_metrics(torch.tensor([1.0]), torch.tensor([]))


def test_task_trains_a_vgae_and_reports_auc_and_ap(step_context):
    from archzoo.registry import create_model

    torch.manual_seed(0)
    bundle = link_split(_graph(), 0.1, 0.2, seed=3)
    model = create_model("vgae", num_node_features=4, hidden=8, latent=4)
    task = LinkPrediction()
    task.setup(model, bundle.info, torch.device("cpu"))
    ctx = step_context(model, lr=0.01)
    batch = next(bundle.train.batches(1))
    assert task.count(batch) == 2 * 32
    logs = task.training_step(model.train(), batch, ctx)
    assert set(logs) == {"loss", "recon", "kl"} and torch.isfinite(logs["loss"])
    model.eval()
    with torch.no_grad():
        task.eval_step(model, next(bundle.val.batches(1)), "val")
    out = task.compute("val")
    assert set(out) == {"val/loss", "val/auc", "val/ap"}
    assert 0.0 <= out["val/auc"] <= 1.0 and 0.0 < out["val/ap"] <= 1.0
    assert task.compute("val") == {}  # compute resets


def test_task_refuses_a_model_that_does_not_score_pairs():
    from archzoo.registry import create_model

    with pytest.raises(UserError, match="scores node pairs"):
        LinkPrediction().setup(create_model("gcn_node", num_node_features=4, num_classes=2), {}, torch.device("cpu"))


def test_cora_links_sizes(data_root):
    from archzoo.data.links import cora_links

    bundle = cora_links(data_dir=str(data_root))
    assert bundle.info["num_edges"] == 5278
    assert bundle.info["split_edges"] == [4488, 263, 527]
    assert bundle.val.neg.size(1) == 263 and bundle.test.neg.size(1) == 527
    assert next(bundle.test.batches(1)).edge_index.size(1) == 2 * 4488


@pytest.mark.slow  # about 20 s on two busy cores: 40 epochs on Cora
def test_cora_vgae_trains_end_to_end(data_root, tmp_path, monkeypatch):
    import json

    from archzoo.cli import main

    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "cora-vgae"
    quick = ["log.progress=none", "log.plots=false", "train.threads=1", "--data-dir", str(data_root)]
    assert main(["train", "cora-vgae", "train.epochs=40", *quick, "--run-dir", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["monitor"] == "val/auc" and 1 <= results["best_epoch"] <= 40
    m = results["metrics"]
    assert m["test/auc"] > 0.8 and m["test/ap"] > 0.8  # 40 epochs already learn most of it
