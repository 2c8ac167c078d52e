"""LR finder and Optuna tuning on fashion-mlp: does the LR finder's rate match a tuned one, and do workers lose trials?

Writes two results:

* ``toolkit_tuning-lrfind``: ``archzoo lr-find fashion-mlp``'s suggestion trains the recipe (3 epochs)
  to a test accuracy compared with the best trial (by validation accuracy) of a 20-trial study
  without pruning over the recipe's ``tune:`` space; target gap <= 0.5 points.
* ``toolkit_tuning-workers``: the same 20-trial study (same TPE seed and space) run by 2 worker
  processes on one journal storage with the median pruner: trials lost (target 0), the pruned
  share (target >= 30%), and its best trial's test accuracy against the unpruned study's
  (target gap <= 0.5 points). Beside it, two processes hammer one SQLite and one journal
  storage with 150 trivial trials each, to show which survives concurrent writers.

Every process trains with 1 thread. ``--limit`` shrinks the Fashion-MNIST training data of every
trial (``data.args.limit``; the summary says so).

    python benchmarks/toolkit_tuning.py [--limit 20000] [--trials 20] [--parts lrfind,workers] [--data-dir D]

``--parts lrfind`` runs the unpruned study and the LR finder only (the first row);
``--parts workers`` runs the stress, the unpruned and the pruned study (the second).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from _common import write_result  # noqa: E402

torch.set_num_threads(1)

STRESS = textwrap.dedent(
    """
    import sys, optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url, n = sys.argv[1], int(sys.argv[2])
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
        storage = JournalStorage(JournalFileBackend(url[len("journal:"):]))
    else:
        storage = url  # Optuna's own RDBStorage with its defaults
    study = optuna.load_study(study_name="stress", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=n)
    """
)


def stress(url: str, storage: object, n: int = 150) -> dict:
    """Two processes writing ``n`` trivial trials each into one storage at once."""
    import optuna

    optuna.create_study(study_name="stress", storage=storage)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", STRESS, url, str(n)], stderr=subprocess.PIPE) for _ in range(2)]
    errs = [p.communicate()[1].decode() for p in procs]
    seconds = time.perf_counter() - t0
    trials = optuna.load_study(study_name="stress", storage=storage).trials
    complete = sum(t.state.name == "COMPLETE" for t in trials)
    return {
        "asked": 2 * n,
        "complete": complete,
        "lost": 2 * n - complete,
        "exit_codes": [p.returncode for p in procs],
        "database_is_locked": any("database is locked" in e for e in errs),
        "first_error": next((e.strip().splitlines()[-1] for e in errs if e.strip()), None),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=20000, help="data.args.limit of every training (0: all data)")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--data-dir")
    p.add_argument(
        "--parts",
        default="lrfind,workers",
        help="which rows to measure, comma-separated (default both): lrfind (the unpruned study and the LR finder) "
        "and workers (the storage stress and the pruned study, compared with the unpruned one)",
    )
    a = p.parse_args()
    parts = set(a.parts.split(","))
    if not parts or parts - {"lrfind", "workers"}:
        p.error(f"--parts takes lrfind and/or workers, got '{a.parts}'")

    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from archzoo.engine.tuning import tune

    over = ["train.epochs=3", "train.threads=1", "log.tensorboard=false", "log.plots=false", "log.progress=none"]
    if a.limit:
        over.append(f"data.args.limit={a.limit}")
    tmp = Path(tempfile.mkdtemp(prefix="toolkit_tuning-"))
    t_start = time.perf_counter()

    # 0. Which storage survives two concurrent writer processes?
    if "workers" in parts:
        db = tmp / "stress.db"
        sqlite = stress(f"sqlite:///{db}", f"sqlite:///{db}")
        jpath = tmp / "stress.journal"
        journal = stress(f"journal:{jpath}", JournalStorage(JournalFileBackend(str(jpath))))
        print("sqlite", sqlite, "\njournal", journal, flush=True)

    def study(name: str, pruner: str) -> tuple[dict, float]:
        t0 = time.perf_counter()
        s = tune("fashion-mlp", a.trials, workers=2, pruner=pruner, overrides=over, out_dir=tmp / name,
                 data_dir=a.data_dir, seed=0, startup=5)  # fmt: skip
        return s, time.perf_counter() - t0

    # 1. The 20-trial study without pruning (2 workers, TPE seed 0).
    full, full_s = study("full", "none")
    print("full", full["states"], full["best"], f"{full_s:.0f}s", flush=True)
    # 2. The same study with the median pruner.
    if "workers" in parts:
        pruned, pruned_s = study("pruned", "median")
        print("pruned", pruned["states"], pruned["best"], f"{pruned_s:.0f}s", flush=True)

    load = round(os.getloadavg()[2], 2)
    data_note = (
        f"each training on the first {a.limit} Fashion-MNIST training images (data.args.limit={a.limit}: "
        f"{int(a.limit * 0.9)} train, {a.limit - int(a.limit * 0.9)} val) and the first {min(a.limit, 10000)} test images"
        if a.limit
        else "each training on all 54000/6000 Fashion-MNIST train/val images"
    )
    tuned_test = 100 * full["best"]["test"]["test/acc"]
    if "lrfind" in parts:
        lrfind_row(a, over, tmp, full, full_s, tuned_test, data_note, load)
    if "workers" in parts:
        workers_row(a, over, full, full_s, pruned, pruned_s, tuned_test, data_note, sqlite, journal, t_start, load)


def lrfind_row(a, over, tmp, full, full_s, tuned_test, data_note, load) -> None:  # noqa: ANN001
    """3. The LR finder's suggestion (its default rule), trained as the recipe otherwise is."""
    from archzoo.engine.lr_finder import lr_find_command
    from archzoo.engine.run import train

    t0 = time.perf_counter()
    lf = lr_find_command("fashion-mlp", over, None, 100, 1e-7, 10.0, str(tmp / "lr_find.png"), None,
                         data_dir=a.data_dir)  # fmt: skip
    lr = float(f"{lf['suggested_lr']:.4g}")
    run = train("fashion-mlp", run_dir=tmp / "lrfind-run", data_dir=a.data_dir, overrides=[*over, f"optim.lr={lr}"])
    lr_test = run.evaluate("test")["test/acc"]
    lr_s = time.perf_counter() - t0
    print("lr-find", lf, lr_test, flush=True)
    gap = tuned_test - 100 * lr_test
    write_result(
        "toolkit_tuning-lrfind",
        {
            "recipe": "fashion-mlp",
            "overrides": over,
            "value": round(gap, 2),
            "unit": "points",
            "target": 0.5,
            "meets_target": gap <= 0.5,
            "anchor": None,
            "anchor_source": None,
            "lr_find": {**lf, "lr_used": lr, "test_acc": lr_test, "seconds": round(lr_s, 1)},
            "tuned": {
                "trials": a.trials,
                "best_trial": full["best"]["number"],
                "best_params": full["best"]["params"],
                "best_val_acc": full["best"]["value"],
                "best_test_acc": full["best"]["test"]["test/acc"],
                "states": full["states"],
                "seconds": round(full_s, 1),
            },
            "summary": (
                f"fashion-mlp, 3 epochs, {data_note}: the LR finder's suggestion {lr:.3g} (100 steps from 1e-7 to 10; "
                f"rule {lf['rule']}: the recipe's onecycle peak is read where the loss stops falling, "
                f"{lf['minimum_lr']:.3g}; the steepest descent was {lf['steepest_lr']:.3g}) "
                f"reaches {100 * lr_test:.2f}% test accuracy against {tuned_test:.2f}% for the best trial (by "
                f"validation accuracy) of a {a.trials}-trial TPE study without pruning (lr {full['best']['params']['optim.lr']:.3g}), "
                f"a gap of {gap:.2f} points (target ≤ 0.5); 1 thread per process, 2 worker processes on 2 cores, "
                f"15-minute load average {load}."
            ),
        },
    )


def workers_row(a, over, full, full_s, pruned, pruned_s, tuned_test, data_note, sqlite, journal, t_start, load) -> None:  # noqa: ANN001
    """The pruned study by 2 workers against the unpruned one, and the storage stress."""
    n_pruned = pruned["states"].get("PRUNED", 0)
    lost = a.trials - pruned["finished_now"]
    frac = n_pruned / a.trials
    pruned_test = 100 * pruned["best"]["test"]["test/acc"] if pruned["best"] else float("nan")
    gap2 = tuned_test - pruned_test
    ok = lost == 0 and frac >= 0.3 and gap2 <= 0.5
    write_result(
        "toolkit_tuning-workers",
        {
            "recipe": "fashion-mlp",
            "overrides": over,
            "value": round(frac, 3),
            "unit": "pruned share",
            "target": 0.3,
            "meets_target": ok,
            "anchor": None,
            "anchor_source": None,
            "trials_lost": lost,
            "states": pruned["states"],
            "pruned_best_test_acc": pruned["best"]["test"]["test/acc"] if pruned["best"] else None,
            "unpruned_best_test_acc": full["best"]["test"]["test/acc"],
            "gap_points": round(gap2, 2),
            "seconds_pruned": round(pruned_s, 1),
            "seconds_unpruned": round(full_s, 1),
            "storage_stress": {"sqlite": sqlite, "journal": journal},
            "total_seconds": round(time.perf_counter() - t_start, 1),
            "summary": (
                f"fashion-mlp, 3 epochs, {data_note}: {a.trials} trials by 2 worker processes on one journal storage "
                f"with the median pruner lost {lost} trials and pruned {n_pruned} ({100 * frac:.0f}%, target ≥ 30%); "
                f"its best trial tests at {pruned_test:.2f}% against {tuned_test:.2f}% without pruning (same TPE seed "
                f"and space), a gap of {gap2:.2f} points (target ≤ 0.5), in {pruned_s:.0f} s against {full_s:.0f} s. "
                f"Two processes writing 150 trivial trials each: SQLite (Optuna's defaults) completed "
                f"{sqlite['complete']}/{sqlite['asked']}{' with database-is-locked errors' if sqlite['database_is_locked'] else ''} "
                f"in {sqlite['seconds']} s, the journal file {journal['complete']}/{journal['asked']} in "
                f"{journal['seconds']} s; 1 thread per process, 15-minute load "
                f"average {load}."
            ),
        },
    )


if __name__ == "__main__":
    main()
