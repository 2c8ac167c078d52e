"""Time to a test accuracy: archzoo's speedrun recipe against the loop the tutorials write.

``--dataset fashion`` (the default) times the first epoch at or above 91% Fashion-MNIST test
accuracy, ``--dataset mnist`` the first at or above 99% MNIST test accuracy.

The tutorial side is written as the PyTorch and d2l tutorials write it: torchvision's
``FashionMNIST`` (or ``MNIST``) with ``ToTensor`` and ``Normalize((0.5,), (0.5,))``, a
``DataLoader(batch_size=64, shuffle=True)``, ``Adam(lr=1e-3)``, ``CrossEntropyLoss``, the
tutorials' two-convolution ``SimpleCNN`` (206,922 parameters), and a test evaluation through
a ``DataLoader`` after every epoch, for at most ``--max-epochs`` (15) epochs.

The archzoo side runs the speedrun recipe (``fashion-speedrun`` or ``mnist-speedrun``)
through the real engine: a ``Trainer``, with its epoch end hooked to evaluate the test set.

Both sides are timed the same way, on the same ``--threads`` (``torch.set_num_threads``):
the clock runs over training and the per-epoch test evaluations; building the dataset
(torchvision's unpacking and dataset objects; archzoo's ``Trainer``, which reads the data
into memory) and the process start (the imports) are measured and reported beside it, not
in it. The archzoo engine's own epoch end (its validation split, checkpoint, logs) runs with
the clock stopped. The figure for a side is the mean over ``--seeds`` of the seconds to the
first epoch at or above the threshold; the ratio is the tutorial's mean over archzoo's. A
tutorial seed that has not reached the threshold after ``--max-epochs`` counts at its time
for those epochs, and the ratio is then a lower bound (``lower_bound: true``). Every archzoo
seed must reach the threshold, or the ratio is not given.

``--recipe fashion-cnn --tutorial-model same`` keeps the earlier comparison: the tutorial
loop trains archzoo's own ``convnet_small`` (the recipe's model), so that both sides train
the same network and only the loop differs; its result is ``results/time_to_accuracy.json``.

Usage: ``python benchmarks/time_to_accuracy.py [--dataset fashion|mnist] [--threshold T]
[--seeds 0 1 2] [--threads 2] [--max-epochs 15] [--recipe R] [--tutorial-model simple|same]
[--data-dir D] [--label L] [key=value ...]``. The speedrun results are
``results/time_to_accuracy-speedrun.json`` (fashion) and
``results/time_to_accuracy-mnist-speedrun.json``; another recipe against SimpleCNN writes
``results/time_to_accuracy-<recipe>-simplecnn.json``, and with ``--tutorial-model same``
``results/time_to_accuracy-<recipe>.json``; ``--label L`` appends ``-L``.
"""

from __future__ import annotations

import time

T_PROCESS = time.perf_counter()  # before the imports: their time is the process start, reported apart

import argparse  # noqa: E402
import gzip  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import synchronizer, write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.data.root import data_root  # noqa: E402
from archzoo.engine.builders import build_model  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402
from archzoo.errors import UserError  # noqa: E402

# dataset -> (torchvision class name, the data root's folder, default threshold, archzoo's speedrun recipe)
DATASETS: dict[str, tuple[str, str, float, str]] = {
    "fashion": ("FashionMNIST", "fashion-mnist", 0.91, "fashion-speedrun"),
    "mnist": ("MNIST", "mnist", 0.99, "mnist-speedrun"),
}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class SimpleCNN(nn.Module):
    """The tutorials' CNN: two 3×3 convolutions with max-pooling, then two linear layers (206,922 parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv1(x)))  # (B, 16, 14, 14)
        x = self.pool(self.relu(self.conv2(x)))  # (B, 32, 7, 7)
        x = x.view(x.size(0), -1)  # (B, 1568)
        x = self.relu(self.fc1(x))
        return self.fc2(x)


def unpack_for_torchvision(src: Path, root: Path, tv_name: str) -> None:
    """Put the four idx files, uncompressed, under ``root/<tv_name>/raw`` (where torchvision looks)."""
    raw = root / tv_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES:
        gz, plain = src / f"{stem}.gz", src / stem
        if gz.is_file():
            with gzip.open(gz) as fin, open(raw / stem, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        elif plain.is_file():
            shutil.copyfile(plain, raw / stem)
        else:
            raise UserError(f"{src} holds neither {stem}.gz nor {stem}.")


def tutorial(
    dataset: str,
    src: Path,
    seed: int,
    threshold: float,
    max_epochs: int,
    device: torch.device,
    make_model: Any = SimpleCNN,
    limit: int | None = None,
) -> dict[str, Any]:
    """The tutorials' loop, timed as the module docstring says; ``limit`` trains on the first images only (tests)."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    tv_name = DATASETS[dataset][0]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        unpack_for_torchvision(src, Path(tmp), tv_name)
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
        cls = getattr(datasets, tv_name)
        train_set = cls(tmp, train=True, download=False, transform=transform)
        test_set = cls(tmp, train=False, download=False, transform=transform)
        if limit:
            train_set, test_set = Subset(train_set, range(limit)), Subset(test_set, range(limit))
        setup = time.perf_counter() - t0

        torch.manual_seed(seed)
        train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
        test_loader = DataLoader(test_set, batch_size=1000)
        model = make_model().to(device)
        criterion = nn.CrossEntropyLoss()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        sync = synchronizer(device)
        elapsed, history = 0.0, []
        for epoch in range(max_epochs):
            t0 = time.perf_counter()
            model.train()
            for images, labels in train_loader:
                images, labels = images.to(device), labels.to(device)
                optimizer.zero_grad()
                loss = criterion(model(images), labels)
                loss.backward()
                optimizer.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for images, labels in test_loader:
                    outputs = model(images.to(device))
                    correct += (outputs.argmax(1) == labels.to(device)).sum().item()
            sync()
            elapsed += time.perf_counter() - t0
            acc = correct / len(test_set)
            history.append({"epoch": epoch + 1, "seconds": round(elapsed, 2), "test_acc": acc})
            print(f"tutorial seed {seed} epoch {epoch + 1}: test acc {acc:.4f} after {elapsed:.1f}s", flush=True)
            if acc >= threshold:
                return {"seed": seed, "seconds": elapsed, "reached": True, "setup_seconds": setup, "history": history}
        return {"seed": seed, "seconds": elapsed, "reached": False, "setup_seconds": setup, "history": history}


def archzoo_side(
    recipe: str, overrides: list[str], seed: int, threshold: float, data_dir: str | None
) -> tuple[dict[str, Any], Trainer]:
    """The recipe through the engine, its epoch end hooked to time and evaluate the test set."""
    t0 = time.perf_counter()
    cfg = load_config(
        recipe,
        None,
        ["log.progress=none", "log.dir=runs/benchmarks/tta", "log.tensorboard=false", "log.plots=false",
         f"train.seed={seed}", *overrides],
    )  # fmt: skip
    trainer = Trainer(cfg, data_dir=data_dir)
    setup = time.perf_counter() - t0
    history: list[dict[str, Any]] = []
    clock = {"elapsed": 0.0, "mark": 0.0}
    end_epoch = trainer._end_epoch
    sync = synchronizer(trainer.device)

    class Reached(Exception):
        pass

    def measured_end_epoch(log: Any, elapsed: float) -> None:
        with trainer._averaged():  # the weights the engine evaluates with (the EMA's, with train.ema_decay)
            metrics = trainer.evaluate("test")
        # With task.args.tta=flip the figure is the flip-averaged one; its second forward pass is on the clock.
        acc = metrics.get("test/tta_acc", metrics["test/acc"])
        sync()  # queued GPU work belongs to this epoch
        clock["elapsed"] += time.perf_counter() - clock["mark"]
        history.append({"epoch": trainer.epoch + 1, "seconds": round(clock["elapsed"], 2), "test_acc": acc})
        print(f"archzoo seed {seed} epoch {trainer.epoch + 1}: test acc {acc:.4f} after {clock['elapsed']:.1f}s")
        if acc >= threshold:
            raise Reached
        end_epoch(log, elapsed)  # the engine's validation, checkpoint and logs: not counted
        trainer.net.train()
        clock["mark"] = time.perf_counter()

    trainer._end_epoch = measured_end_epoch  # type: ignore[method-assign]
    clock["mark"] = time.perf_counter()
    try:
        trainer.fit()
        reached = False
    except Reached:
        reached = True
    out = {"seed": seed, "seconds": clock["elapsed"], "reached": reached, "setup_seconds": setup, "history": history}
    return out, trainer


def summarize(tutorial_runs: list[dict[str, Any]], archzoo_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each side's mean seconds to the threshold and the ratio; a tutorial miss makes the ratio a lower bound.

    A tutorial seed that missed counts at the seconds of all its epochs (the cap). An archzoo
    seed that missed leaves the ratio undefined (``None``): archzoo's recipe must reach it every time.
    """
    tut = statistics.fmean(r["seconds"] for r in tutorial_runs)
    az = statistics.fmean(r["seconds"] for r in archzoo_runs)
    all_reached = all(r["reached"] for r in archzoo_runs)
    ratio = tut / az if all_reached and az > 0 else None
    return {
        "tutorial_seconds": tut,
        "archzoo_seconds": az,
        "ratio": ratio,
        "lower_bound": not all(r["reached"] for r in tutorial_runs),
        "archzoo_all_reached": all_reached,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(DATASETS), default="fashion")
    p.add_argument("--threshold", type=float, help="test accuracy to reach (default 0.91 fashion, 0.99 mnist)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    p.add_argument("--max-epochs", type=int, default=15, help="the tutorial side's cap")
    p.add_argument("--recipe", help="archzoo's recipe (default: the dataset's speedrun recipe)")
    p.add_argument(
        "--tutorial-model",
        choices=("simple", "same"),
        default="simple",
        help="the tutorial side's model: the tutorials' SimpleCNN, or the recipe's own model (the old comparison)",
    )
    p.add_argument("--data-dir")
    p.add_argument("--label", help="a suffix for the result name (e.g. 1thread)")
    p.add_argument("overrides", nargs="*", help="archzoo overrides, e.g. train.epochs=3")
    a = p.parse_args()
    if a.threads < 1:
        raise SystemExit("--threads must be at least 1.")
    tv_name, folder, default_threshold, default_recipe = DATASETS[a.dataset]
    threshold = a.threshold if a.threshold is not None else default_threshold
    recipe = a.recipe or default_recipe
    process_start = time.perf_counter() - T_PROCESS
    torch.set_num_threads(a.threads)
    overrides = [f"train.threads={a.threads}", *a.overrides]

    az_runs, trainer = [], None
    for seed in a.seeds:
        run, trainer = archzoo_side(recipe, overrides, seed, threshold, a.data_dir)
        az_runs.append(run)
    assert trainer is not None
    if trainer.info.get("name") != {"fashion": "fashion_mnist", "mnist": "mnist"}[a.dataset]:
        raise SystemExit(f"Recipe {recipe} trains on {trainer.info.get('name')}, not on --dataset {a.dataset}.")
    src = Path(trainer.info.get("source") or data_root(a.data_dir) / folder)
    torch.set_num_threads(a.threads)
    if a.tutorial_model == "same":
        cfg, info = trainer.cfg, trainer.info

        def make_model() -> nn.Module:
            return build_model(cfg, info)
    else:
        make_model = SimpleCNN
    tut_runs = [tutorial(a.dataset, src, s, threshold, a.max_epochs, trainer.device, make_model) for s in a.seeds]
    s = summarize(tut_runs, az_runs)
    target, stretch = 5.0, 7.0
    ratio = s["ratio"]
    same = a.tutorial_model == "same"
    payload = {
        "value": round(ratio, 2) if ratio else None,
        "unit": "x (tutorial seconds / archzoo seconds to the threshold)",
        "target": target,
        "stretch_target": stretch,
        "meets_target": bool(ratio and ratio >= target),
        "anchor": None,
        "anchor_source": None,
        "dataset": a.dataset,
        "threshold": threshold,
        "seeds": a.seeds,
        "threads": a.threads,
        "max_epochs": a.max_epochs,
        "recipe": recipe,
        "overrides": a.overrides,
        "model": trainer.cfg.model.name,
        "parameters": sum(q.numel() for q in trainer.model.parameters()),
        "tutorial_model": "convnet_small, same model both sides" if same else "SimpleCNN",
        "tutorial_parameters": sum(q.numel() for q in make_model().parameters()),
        "device": str(trainer.device),
        "precision": trainer.precision,
        "process_start_seconds": round(process_start, 2),
        "archzoo_seconds": round(s["archzoo_seconds"], 2),
        "tutorial_seconds": round(s["tutorial_seconds"], 2),
        "lower_bound": s["lower_bound"],
        "archzoo_all_reached": s["archzoo_all_reached"],
        "archzoo": az_runs,
        "tutorial": tut_runs,
    }
    bound = "≥ " if s["lower_bound"] else ""
    payload["summary"] = (
        f"time to {100 * threshold:.0f}% {tv_name} test, mean of seeds {', '.join(map(str, a.seeds))} on "
        f"{a.threads} thread{'s' if a.threads > 1 else ''}: archzoo {recipe} {s['archzoo_seconds']:.1f} s vs tutorial "
        f"loop ({payload['tutorial_model']}) {s['tutorial_seconds']:.1f} s: {bound}{ratio:.2f}×"
        if ratio
        else f"archzoo {recipe} missed {threshold} on some seed"
    )
    if same:
        name = "time_to_accuracy" if recipe == "fashion-cnn" else f"time_to_accuracy-{recipe}"
    elif recipe == default_recipe:
        name = "time_to_accuracy-speedrun" if a.dataset == "fashion" else "time_to_accuracy-mnist-speedrun"
    else:  # another recipe against the tutorials' SimpleCNN
        name = f"time_to_accuracy-{recipe}-simplecnn"
    write_result(f"{name}-{a.label}" if a.label else name, payload)
    print(payload["summary"])


if __name__ == "__main__":
    main()
