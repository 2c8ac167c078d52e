"""archzoo tune: the search space, real Optuna studies on digits, pruning, resume, workers, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
import yaml

from archzoo.cli import main
from archzoo.config import TuneConfig, load_config
from archzoo.engine.tuning import open_storage, tune
from archzoo.errors import UserError

QUICK = ["train.threads=1", "log.tensorboard=false", "log.plots=false"]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("archzoo: error: ") and "Traceback" not in err
    return lines[0]


def space_file(tmp_path: Path, space: dict, name: str = "space.yaml", **tune_extra: object) -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump({"tune": {"metric": "val/acc", **tune_extra, "space": space}}))
    return p


SPACE = {
    "optim.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
    "model.args.dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "data.batch_size": {"type": "categorical", "choices": [32, 64]},
}


# ----------------------------------------------------------------------------- the tune: section


@pytest.mark.parametrize(
    ("space", "needle"),
    [
        ({"optim.lr": {"type": "logunif", "low": 1e-4, "high": 1}}, "a search-space type is one of"),
        ({"optim.lr": {"type": "float", "low": 1, "high": 1}}, "needs numbers low < high"),
        ({"optim.lr": {"type": "loguniform", "low": 0, "high": 1}}, "needs low > 0"),
        ({"optim.name": {"type": "categorical", "choices": []}}, "non-empty list of choices"),
        ({"optim.lr": {"type": "float", "low": 0, "high": 1, "choices": [1]}}, "does not take 'choices'"),
        ({"optim.lr": 0.1}, "must be a mapping"),
    ],
)
def test_tune_config_refuses_a_bad_space(space: dict, needle: str) -> None:
    with pytest.raises(UserError, match=needle.replace("(", r"\(")):
        TuneConfig(space=space)


def test_tune_config_reads_yaml_numbers_without_a_dot() -> None:
    cfg = TuneConfig(**yaml.safe_load("space: {optim.lr: {type: loguniform, low: 1e-4, high: 1e-1}}"))
    assert cfg.space["optim.lr"] == {"type": "loguniform", "low": 1e-4, "high": 1e-1}
    with pytest.raises(UserError, match="tune.direction must be maximize or minimize"):
        TuneConfig(direction="up")


def test_fashion_mlp_ships_a_search_space() -> None:
    cfg = load_config("fashion-mlp")
    assert cfg.tune.metric == "val/acc" and cfg.tune.direction == "maximize"
    assert {"optim.lr", "model.args.dropout", "data.batch_size"} <= set(cfg.tune.space)


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("optim.lrr", "Unknown config key 'optim.lrr'"),
        ("model.args.depth", "model 'mlp' has no argument 'depth'"),
        ("log.dir", "is not a dotted override of a training setting"),
    ],
)
def test_a_space_key_that_is_no_override_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, needle: str
) -> None:
    cfg = space_file(tmp_path, {key: {"type": "float", "low": 0.1, "high": 0.2}})
    rc = main(["tune", "--trials", "1", "--dir", str(tmp_path / "s"), "--config", str(cfg), "digits-mlp", *QUICK])
    assert rc == 2
    assert needle in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "s" / "trials").exists()  # refused before any trial ran


# ----------------------------------------------------------------------------- studies


def test_a_study_trains_real_runs_exports_best_and_resumes(tmp_path: Path) -> None:
    cfg = space_file(tmp_path, SPACE)
    study_dir = tmp_path / "study"
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = dict(config=str(cfg), out_dir=study_dir, storage=storage, pruner="none", startup=2)
    s = tune("digits-mlp", 3, overrides=["train.epochs=2", *QUICK], **common)
    assert s["trials"] == 3 and s["states"] == {"COMPLETE": 3} and s["finished_now"] == 3
    study = optuna.load_study(study_name="digits-mlp", storage=storage)
    assert study.user_attrs["recipe"] == "digits-mlp"
    best = study.best_trial
    assert s["best"]["number"] == best.number and s["best"]["value"] == pytest.approx(best.value)
    for t in study.trials:
        run = Path(t.user_attrs["run_dir"])
        results = json.loads((run / "results.json").read_text())
        # The trial's value is its run's validation accuracy of the kept weights.
        assert t.value == pytest.approx(results["metrics"]["val/acc"], abs=1e-9)
        saved = load_config(None, run / "config.yaml")
        assert saved.optim.lr == pytest.approx(t.params["optim.lr"])
        assert saved.data.batch_size == t.params["data.batch_size"]
        assert (run / "checkpoints").is_dir() == (t.number == best.number)  # only the best keeps its checkpoints
    assert (study_dir / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert (study_dir / "importance.png").read_bytes()[:4] == b"\x89PNG"
    # best.yaml retrains the best trial with archzoo train --config.
    exported = load_config("digits-mlp", study_dir / "best.yaml")
    assert exported.optim.lr == pytest.approx(best.params["optim.lr"])
    assert exported.model.args["dropout"] == pytest.approx(best.params["model.args.dropout"])
    assert exported.train.epochs == 2 and exported.tune.space == {}
    # The same storage and study name continue the study.
    s2 = tune("digits-mlp", 2, overrides=["train.epochs=2", *QUICK], **common)
    assert s2["trials"] == 5 and s2["finished_now"] == 2
    numbers = [t.number for t in optuna.load_study(study_name="digits-mlp", storage=storage).trials]
    assert numbers == [0, 1, 2, 3, 4]
    params = [
        tuple(sorted(t.params.items())) for t in optuna.load_study(study_name="digits-mlp", storage=storage).trials
    ]
    assert len(set(params)) == 5  # the continuation does not replay the first trials' draws


def test_a_pruner_stops_trials_at_a_validation(tmp_path: Path) -> None:
    """Optuna's ThresholdPruner prunes any accuracy below 1.01: every trial stops at its first report."""
    cfg = space_file(tmp_path, SPACE)
    pruner = optuna.pruners.ThresholdPruner(lower=1.01)
    s = tune("digits-mlp", 2, config=str(cfg), out_dir=tmp_path / "s", pruner=pruner,
             overrides=["train.epochs=3", *QUICK])  # fmt: skip
    assert s["states"] == {"PRUNED": 2} and s["best"] is None
    study = optuna.load_study(study_name="digits-mlp", storage=open_storage(s["storage"]))
    for t in study.trials:
        assert list(t.intermediate_values) == [0]
        assert 0.0 < t.intermediate_values[0] < 1.0
        run = Path(t.user_attrs["run_dir"])
        assert not (run / "results.json").exists()  # training ended at the first validation
        assert (run / "config.yaml").is_file()
    assert not (tmp_path / "s" / "best.yaml").exists()


def test_median_pruning_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A learning rate of 1e-7 stays near chance; after one finished trial the median pruner stops it.

    TPE with seed 4 draws 0.003 first on this two-choice space (Optuna 5.1), so the pruner has a
    good trial to compare with; the trials at 0.003 repeat the same run and are never pruned.
    """
    space = {"optim.lr": {"type": "categorical", "choices": [0.003, 1e-7]}}
    cfg = space_file(tmp_path, space)
    rc = main(["tune", "--trials", "6", "--startup", "1", "--seed", "4", "--pruner", "median", "--dir", str(tmp_path / "s"),
               "--config", str(cfg), "digits-mlp", "train.epochs=2", "optim.scheduler=none", *QUICK])  # fmt: skip
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    study = optuna.load_study(study_name="digits-mlp", storage=open_storage(s["storage"]))
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert len(done) + len(pruned) == 6
    assert pruned, [(t.params, t.state.name) for t in study.trials]
    for t in pruned:
        assert t.params["optim.lr"] == 1e-7 and len(t.intermediate_values) == 1
    assert s["best"]["params"]["optim.lr"] == 0.003 and s["best"]["value"] > 0.8


def test_hyperband_reads_a_report_at_every_validation(tmp_path: Path) -> None:
    """train.eval_every=5 validates inside the epochs too: each of them is one report to the pruner."""
    cfg = space_file(tmp_path, SPACE)
    s = tune("digits-mlp", 3, config=str(cfg), out_dir=tmp_path / "s", pruner="hyperband", startup=1,
             overrides=["train.epochs=2", "train.eval_every=5", *QUICK])  # fmt: skip
    assert s["trials"] == 3 and set(s["states"]) <= {"COMPLETE", "PRUNED"}
    study = optuna.load_study(study_name="digits-mlp", storage=open_storage(s["storage"]))
    first = study.trials[0]  # never pruned: Hyperband needs finished trials to compare with
    assert first.state.name == "COMPLETE"
    rows = [line.split(",") for line in (Path(first.user_attrs["run_dir"]) / "metrics.csv").read_text().splitlines()]
    col = rows[0].index("val/acc")
    logged = [float(r[col]) for r in rows[1:] if r[col] and r[rows[0].index("test/acc")] == ""]
    assert list(first.intermediate_values) == list(range(len(logged)))
    assert [first.intermediate_values[i] for i in range(len(logged))] == pytest.approx(logged, abs=1e-6)


def test_two_worker_processes_lose_no_trial(tmp_path: Path) -> None:
    cfg = space_file(tmp_path, SPACE)
    s = tune("digits-mlp", 4, workers=2, config=str(cfg), out_dir=tmp_path / "s", pruner="none",
             overrides=["train.epochs=1", *QUICK])  # fmt: skip
    assert s["storage"].startswith("journal:")
    assert s["trials"] == 4 and s["states"] == {"COMPLETE": 4}
    study = optuna.load_study(study_name="digits-mlp", storage=open_storage(s["storage"]))
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert len({t.user_attrs["run_dir"] for t in study.trials}) == 4
    assert all((Path(t.user_attrs["run_dir"]) / "results.json").is_file() for t in study.trials)


WRITER = textwrap.dedent(
    """
    import sys, optuna
    from archzoo.engine.tuning import open_storage
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="s", storage=open_storage(sys.argv[1]))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=int(sys.argv[2]))
    """
)


def test_the_journal_storage_takes_two_concurrent_writers(tmp_path: Path) -> None:
    """The default storage of --workers: two processes writing 60 trials each, none lost."""
    url = f"journal:{tmp_path / 'j.journal'}"
    optuna.create_study(study_name="s", storage=open_storage(url))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, "60"], stderr=subprocess.PIPE) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    trials = optuna.load_study(study_name="s", storage=open_storage(url)).trials
    assert len(trials) == 120 and all(t.state.name == "COMPLETE" for t in trials)
    assert sorted(t.number for t in trials) == list(range(120))


def test_the_dashboard_opens_the_study_storage(tmp_path: Path) -> None:
    """optuna-dashboard's WSGI app (no server started) lists the study from the journal file."""
    import optuna_dashboard

    url = f"journal:{tmp_path / 'j.journal'}"
    st = open_storage(url)
    study = optuna.create_study(study_name="dash", storage=st)
    study.set_user_attr("recipe", "digits-mlp")
    app = optuna_dashboard.wsgi(str(tmp_path / "j.journal"))  # the file path, as `optuna-dashboard FILE` takes it
    env: dict = {"PATH_INFO": "/api/studies"}
    setup_testing_defaults(env)
    status: list[str] = []
    body = b"".join(app(env, lambda s, h, exc_info=None: status.append(s)))
    assert status == ["200 OK"]
    assert [x["study_name"] for x in json.loads(body)["study_summaries"]] == ["dash"]
    r = subprocess.run(["optuna-dashboard", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "storage" in r.stdout.lower()


# ----------------------------------------------------------------------------- bad input


def test_a_study_of_another_recipe_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    study = optuna.create_study(study_name="shared", storage=storage, direction="maximize")
    study.set_user_attr("recipe", "digits-mlp")
    cfg = space_file(tmp_path, {"optim.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}})
    rc = main(["tune", "--trials", "1", "--storage", storage, "--study", "shared", "--dir", str(tmp_path / "s"),
               "--config", str(cfg), "digits-cnn", *QUICK])  # fmt: skip
    assert rc == 2
    line = one_error_line(capsys.readouterr().err)
    assert "Study 'shared'" in line and "belongs to recipe 'digits-mlp', not 'digits-cnn'" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--storage", "sqlite:////no/such/folder/s.db"],
            "cannot be opened: the folder /no/such/folder does not exist",
        ),
        (["--storage", "study.db"], "is not a storage URL"),
        (["--storage", "nosuchdb://x"], "Storage nosuchdb://x cannot be opened"),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--timeout", "-1"], "--timeout must be positive"),
        (["--pruner", "random"], "invalid choice: 'random'"),
        (["tune.metric=val/f1"], "set the search space in the recipe's tune: section"),
    ],
)
def test_tune_bad_input_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    cfg = space_file(tmp_path, SPACE)
    argv = ["tune", "--dir", str(tmp_path / "s"), "--config", str(cfg)]
    if "--trials" not in args:
        argv += ["--trials", "1"]
    opts = [a for a in args if "=" not in a]
    over = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        rc = main([*argv, *opts, "digits-mlp", *QUICK, *over])
    except SystemExit as e:  # argparse's own refusals exit from the parser
        rc = e.code
    assert rc == 2
    assert needle in one_error_line(capsys.readouterr().err)
    assert not list((tmp_path / "s").glob("trials/*"))


def test_a_recipe_without_a_space_and_a_wrong_metric(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["tune", "--trials", "1", "--dir", str(tmp_path / "a"), "digits-mlp", *QUICK])
    assert rc == 2
    assert "Recipe 'digits-mlp' has no tune.space to search" in one_error_line(capsys.readouterr().err)
    cfg = space_file(tmp_path, SPACE, metric="val/accuracy")
    rc = main(["tune", "--trials", "1", "--dir", str(tmp_path / "b"), "--config", str(cfg), "digits-mlp",
               "train.epochs=1", *QUICK])  # fmt: skip
    assert rc == 2
    assert "tune.metric 'val/accuracy' is not among the metrics" in one_error_line(capsys.readouterr().err)


def test_an_unknown_space_type_is_one_sentence_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = space_file(tmp_path, {"optim.lr": {"type": "gaussian", "low": 1e-4, "high": 1e-2}})
    rc = main(["tune", "--trials", "1", "--dir", str(tmp_path / "s"), "--config", str(cfg), "digits-mlp", *QUICK])
    assert rc == 2
    line = one_error_line(capsys.readouterr().err)
    assert "tune.space.optim.lr has type 'gaussian'" in line and "loguniform, uniform, float, int, categorical" in line
