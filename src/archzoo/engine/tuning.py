"""Hyperparameter search with Optuna over a recipe's ``tune:`` search space.

Akiba et al., "Optuna: A Next-generation Hyperparameter Optimization Framework" (KDD 2019,
https://arxiv.org/abs/1907.10902). Each trial draws a point of the recipe's ``tune.space``
with the seeded TPE sampler (Bergstra et al., NeurIPS 2011: it models
:math:`p(x \\mid y < y^*)` and :math:`p(x \\mid y \\ge y^*)` with Parzen estimators and picks
the :math:`x` maximising their ratio), turns it into dotted overrides, and trains the recipe
with the one :class:`~archzoo.engine.trainer.Trainer` into a run directory of its own. The
trainer's ``on_validate`` hook reports the validation metric after every validation, so a
pruner can stop an unpromising trial early:

- ``median``: prune at report :math:`t` when the trial's best value so far is worse than the
  median of the other trials' values at :math:`t` (after ``startup`` finished trials);
- ``hyperband``: successive halving brackets over the reports (Li et al., JMLR 2018);
- ``none``: every trial runs to its end.

A study lives in an Optuna storage: by default a journal file ``<study dir>/study.journal``
(several processes append to it under a file lock; ``--workers K`` starts K of them),
``sqlite:///study.db``, or any RDB URL Optuna takes (``postgresql://user@host/db`` shares a
study between machines). The same storage and study name continue a study.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from archzoo.config import Config, apply_overrides, config_from_dict, load_config, parse_override, recipe_dict
from archzoo.errors import TrainingDiverged, UserError

PRUNERS = ("median", "hyperband", "none")
GROUPS = ("data", "model", "task", "optim", "train")
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UserError("archzoo tune needs Optuna: pip install 'archzoo[tune]'.") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# ----------------------------------------------------------------------------- storage


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url``: ``journal:PATH`` (or a path ending in .journal), or an RDB URL.

    ``sqlite:///file.db`` and server URLs (``postgresql://``, ``mysql://``) go to Optuna's
    RDBStorage as they are. Anything that cannot be opened is one sentence.
    """
    optuna = _optuna()
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        if url.startswith("journal:") or url.endswith(".journal"):
            path = Path(url.removeprefix("journal:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        if "://" not in url:
            raise UserError(
                f"Storage '{url}' is not a storage URL; use sqlite:///study.db, journal:study.journal or postgresql://..."
            )
        if url.startswith("sqlite:///"):
            db = Path(url.removeprefix("sqlite:///"))
            if not db.parent.is_dir():
                raise UserError(f"Storage {url} cannot be opened: the folder {db.parent} does not exist.")
        return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None)
    except UserError:
        raise
    except (optuna.exceptions.OptunaError, OSError, ImportError, ValueError, Exception) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"Storage {url} cannot be opened ({first}).") from None


# ----------------------------------------------------------------------------- the search space


def _value_text(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def representative(spec: dict[str, Any]) -> Any:
    """A value of the distribution (its low end or first choice), to check the key with."""
    if spec["type"] == "categorical":
        return spec["choices"][0]
    return int(spec["low"]) if spec["type"] == "int" else float(spec["low"])


def check_space(cfg: Config, recipe: str | None, config: str | None, overrides: list[str]) -> None:
    """Refuse a search-space key that is no dotted config override, or no argument of its builder."""
    from archzoo.registry import DATASETS, MODELS, TASKS, _check_kwargs

    space = cfg.tune.space
    if not space:
        raise UserError(f"Recipe '{cfg.recipe}' has no tune.space to search; add a tune: section (see docs/engine.md).")
    for key, spec in space.items():
        group = key.split(".")[0]
        if group not in GROUPS or key.count(".") < 1:
            raise UserError(
                f"tune.space key '{key}' is not a dotted override of a training setting ({', '.join(GROUPS)})."
            )
        base = recipe_dict(recipe) if recipe else {}
        if config:
            from archzoo.config import _merge, load_yaml

            _merge(base, load_yaml(config))
        raw = apply_overrides(base, [*overrides, f"{key}={_value_text(representative(spec))}"])
        try:
            trial_cfg = config_from_dict(raw)
        except UserError as e:
            raise UserError(f"tune.space key '{key}' is refused as an override: {e}") from None
        args = {"model": (MODELS, trial_cfg.model), "data": (DATASETS, trial_cfg.data), "task": (TASKS, trial_cfg.task)}
        if group in args and key.split(".")[1] == "args":
            registry, part = args[group]
            _check_kwargs(registry.get(part.name), part.args, f"tune.space key '{key}': {group} '{part.name}'")


def suggest(trial: Any, key: str, spec: dict[str, Any]) -> Any:
    """Draw ``key`` from its distribution through the Optuna trial."""
    kind = spec["type"]
    if kind == "categorical":
        return trial.suggest_categorical(key, spec["choices"])
    if kind == "int":
        return trial.suggest_int(key, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)),
                                 log=bool(spec.get("log", False)))  # fmt: skip
    log = kind == "loguniform" or bool(spec.get("log", False))
    step = spec.get("step")
    return trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=log,
                               step=None if step is None or log else float(step))  # fmt: skip


def params_overrides(params: dict[str, Any]) -> list[str]:
    return [f"{k}={_value_text(v)}" for k, v in params.items()]


# ----------------------------------------------------------------------------- one trial


class Objective:
    """Train one trial of the study: the recipe with the drawn parameters, into ``trials/<study>-<n>``.

    Args:
        recipe, config, overrides: the base configuration (as ``archzoo train`` takes it).
        metric: the validation metric reported and returned.
        study_dir: parent of the trials' run directories.
        study_name: names the run directories.
        data_dir: data root.
    """

    def __init__(
        self,
        recipe: str | None,
        config: str | None,
        overrides: list[str],
        metric: str,
        study_dir: Path,
        study_name: str,
        data_dir: str | None = None,
    ) -> None:
        self.recipe, self.config, self.overrides = recipe, config, list(overrides)
        self.metric, self.study_dir, self.study_name, self.data_dir = metric, study_dir, study_name, data_dir

    def __call__(self, trial: Any) -> float:
        optuna = _optuna()
        from archzoo.engine.trainer import Trainer

        base = load_config(self.recipe, self.config, self.overrides)
        params = {k: suggest(trial, k, spec) for k, spec in base.tune.space.items()}
        cfg = load_config(self.recipe, self.config, [*self.overrides, *params_overrides(params), "log.progress=none"])
        run_dir = self.study_dir / "trials" / f"{self.study_name}-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trainer = Trainer(cfg, run_dir=run_dir, data_dir=self.data_dir)
        reports = [0]

        def report(step: int, metrics: dict[str, float]) -> None:
            if self.metric not in metrics:
                raise UserError(f"tune.metric '{self.metric}' is not among the metrics: {', '.join(sorted(metrics))}.")
            trial.report(float(metrics[self.metric]), reports[0])  # one report per validation
            reports[0] += 1
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after validation {reports[0]} (step {step})")

        trainer.on_validate.append(report)
        try:
            results = trainer.fit()
        except TrainingDiverged as e:
            trial.set_user_attr("diverged", str(e))
            return math.nan  # recorded as a failed trial; the study goes on
        trial.set_user_attr("test", {k: v for k, v in results.items() if k.startswith("test/")})
        return float(results[self.metric])


# ----------------------------------------------------------------------------- the study


def build_pruner(name: str | Any, startup: int) -> Any:
    optuna = _optuna()
    if not isinstance(name, str):
        return name  # an Optuna pruner given from Python
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"--pruner must be one of {', '.join(PRUNERS)}, got '{name}'.")


def _sampler(seed: int, startup: int) -> Any:
    return _optuna().samplers.TPESampler(seed=seed, n_startup_trials=startup)


def _optimize(job: dict[str, Any]) -> int:
    """Run ``job["trials"]`` trials of the study in this process (a worker, or the caller itself)."""
    import torch

    optuna = _optuna()
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    storage = open_storage(job["storage"])
    study = optuna.load_study(
        study_name=job["study"],
        storage=storage,
        sampler=_sampler(job["seed"], job["startup"]),
        pruner=build_pruner(job["pruner"], job["startup"]),
    )
    objective = Objective(job["recipe"], job["config"], job["overrides"], job["metric"], Path(job["study_dir"]),
                          job["study"], job["data_dir"])  # fmt: skip

    def say(study: Any, trial: Any) -> None:  # one line per finished trial, on stderr
        value = "" if trial.value is None else f" {job['metric']} {trial.value:.4f}"
        if trial.state.name == "PRUNED" and trial.intermediate_values:
            value = f" at validation {len(trial.intermediate_values)}"
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        print(f"trial {trial.number} {trial.state.name.lower()}{value} ({params})", file=sys.stderr, flush=True)

    study.optimize(objective, n_trials=job["trials"], timeout=job["timeout"], catch=(), callbacks=[say])
    return job["trials"]


def _resolve(cfg: Config) -> tuple[str, str]:
    from archzoo.engine.builders import build_task

    task = build_task(cfg)
    metric = cfg.tune.metric or task.monitor
    if metric is None:
        raise UserError(f"Task '{cfg.task.name}' monitors no metric; set tune.metric (e.g. val/acc).")
    direction = cfg.tune.direction
    if direction is None:
        mode = task.mode if metric == task.monitor else ("min" if metric.endswith(("loss", "rmse", "mae")) else "max")
        direction = "minimize" if mode == "min" else "maximize"
    return metric, direction


def tune(
    recipe: str | None,
    trials: int,
    storage: str | None = None,
    study: str | None = None,
    timeout: float | None = None,
    workers: int = 1,
    pruner: str | Any = "median",
    overrides: list[str] | None = None,
    config: str | None = None,
    out_dir: str | Path | None = None,
    data_dir: str | None = None,
    seed: int = 0,
    startup: int = 5,
) -> dict[str, Any]:
    """Run (or continue) a study over the recipe's ``tune.space``; returns its summary.

    Args:
        recipe: a shipped recipe with a ``tune:`` section (or None with ``config``).
        trials: trials to run in this call, spread over the workers.
        storage: Optuna storage URL (default ``journal:<study dir>/study.journal``).
        study: the study's name (default: the recipe's name).
        timeout: seconds after which each worker starts no new trial (None: no limit).
        workers: processes sharing the study (default 1: this process).
        pruner: ``median``, ``hyperband`` or ``none`` (or an Optuna pruner object).
        overrides: dotted overrides applied to every trial (``train.epochs=3``).
        config: a YAML file applied over the recipe.
        out_dir: the study directory (default ``<log.dir>/tune/<study>``).
        data_dir: data root.
        seed: seed of the TPE sampler (default 0; each worker and each continuation adds an offset).
        startup: random trials before TPE models the space, and finished trials before the
            median pruner prunes (default 5).
    """
    optuna = _optuna()
    overrides = list(overrides or [])
    if trials < 1:
        raise UserError(f"--trials must be at least 1, got {trials}.")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}.")
    if timeout is not None and timeout <= 0:
        raise UserError(f"--timeout must be positive seconds, got {timeout}.")
    if startup < 0:
        raise UserError(f"--startup must be non-negative, got {startup}.")
    for item in overrides:
        if parse_override(item)[0][0] == "tune":
            raise UserError(f"Override '{item}': set the search space in the recipe's tune: section or --config file.")
    cfg = load_config(recipe, config, overrides)
    check_space(cfg, recipe, config, overrides)
    build_pruner(pruner, startup)  # refuses an unknown name before anything is written
    metric, direction = _resolve(cfg)
    name = study or cfg.recipe
    study_dir = Path(out_dir) if out_dir else Path(cfg.log.dir) / "tune" / name
    study_dir.mkdir(parents=True, exist_ok=True)
    url = storage or f"journal:{study_dir / 'study.journal'}"
    st = open_storage(url)
    try:
        s = optuna.create_study(storage=st, study_name=name, direction=direction, load_if_exists=True)
    except Exception as e:  # a broken database or journal
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"Storage {url} cannot be opened ({first}).") from None
    owner = s.user_attrs.get("recipe")
    if owner is None:
        s.set_user_attr("recipe", cfg.recipe)
        s.set_user_attr("metric", metric)
    elif owner != cfg.recipe:
        raise UserError(
            f"Study '{name}' in {url} belongs to recipe '{owner}', not '{cfg.recipe}'; pick another --study."
        )
    if s.direction.name.lower() != direction:
        raise UserError(
            f"Study '{name}' is to {s.direction.name.lower()} its metric, and this search would {direction} it."
        )
    before = len(s.trials)
    jobs = []
    for i in range(workers):
        n = trials // workers + (1 if i < trials % workers else 0)
        if n:
            jobs.append(
                {
                    "storage": url, "study": name, "trials": n, "timeout": timeout, "recipe": recipe,
                    "config": config, "overrides": overrides, "metric": metric, "study_dir": str(study_dir),
                    "data_dir": data_dir, "seed": seed + before + 1000 * i, "startup": startup,
                    "pruner": pruner, "threads": cfg.train.threads,
                }
            )  # fmt: skip
    if len(jobs) == 1:
        _optimize(jobs[0])
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if not isinstance(pruner, str):
            raise UserError("Several workers take a pruner by name (median, hyperband or none).")
        with ProcessPoolExecutor(len(jobs), mp_context=mp.get_context("spawn")) as pool:
            for f in [pool.submit(_optimize, j) for j in jobs]:
                f.result()  # a worker's UserError is raised here
    s = optuna.load_study(study_name=name, storage=open_storage(url))
    base: dict[str, Any] = {}
    if config:
        from archzoo.config import load_yaml

        base = {k: v for k, v in load_yaml(config).items() if k != "tune"}
    return finish_study(s, study_dir, overrides, url, trials, before, base)


# ----------------------------------------------------------------------------- results


def finish_study(
    study: Any,
    study_dir: Path,
    overrides: list[str],
    url: str,
    asked: int,
    before: int,
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write best.yaml, the history and importance plots and summary.json; drop non-best checkpoints.

    ``best.yaml`` holds what the best trial trained with over the recipe: ``base`` (the --config
    file's settings), the overrides and the drawn parameters, for ``archzoo train RECIPE --config``.
    """
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    new = study.trials[before:]
    summary: dict[str, Any] = {
        "study": study.study_name,
        "storage": url,
        "recipe": study.user_attrs.get("recipe"),
        "metric": study.user_attrs.get("metric"),
        "direction": study.direction.name.lower(),
        "trials": len(study.trials),
        "states": states,
        "asked": asked,
        "finished_now": sum(t.state.name in FINISHED for t in new),
        "best": None,
    }
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        nested = apply_overrides(dict(base or {}), [*overrides, *params_overrides(best.params)])
        (study_dir / "best.yaml").write_text(yaml.safe_dump(nested, sort_keys=False))
        summary["best"] = {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "run_dir": best.user_attrs.get("run_dir"),
            "test": best.user_attrs.get("test", {}),
            "override_file": str(study_dir / "best.yaml"),
        }
        # Every trial keeps its run directory (config, metrics, results, final weights); only the
        # best keeps its full checkpoints (optimizer state), to hold the disk use down.
        for t in study.trials:
            if t.number != best.number and t.state.name in FINISHED and t.user_attrs.get("run_dir"):
                shutil.rmtree(Path(t.user_attrs["run_dir"]) / "checkpoints", ignore_errors=True)
    summary["plots"] = plot_study(study, study_dir)
    (study_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def plot_study(study: Any, study_dir: Path) -> dict[str, str | None]:
    """``history.png`` (every trial's value and the best so far) and ``importance.png`` (fANOVA)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    optuna = _optuna()
    out: dict[str, str | None] = {"history": None, "importance": None}
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    pruned = [t for t in study.trials if t.state.name == "PRUNED" and t.intermediate_values]
    fig, ax = plt.subplots(figsize=(6, 4))
    if done:
        ax.scatter([t.number for t in done], [t.value for t in done], label="complete", zorder=3)
    if pruned:
        last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
        ax.scatter([t.number for t in pruned], last, marker="x", color="gray", label="pruned (last report)")
    if done:
        pick = max if study.direction.name == "MAXIMIZE" else min
        xs, ys, best = [], [], None
        for t in sorted(done, key=lambda t: t.number):
            best = t.value if best is None else pick(best, t.value)
            xs.append(t.number)
            ys.append(best)
        ax.step(xs, ys, where="post", color="red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(str(study.user_attrs.get("metric", "objective")))
    ax.set_title(f"study {study.study_name}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(study_dir / "history.png", dpi=100)
    plt.close(fig)
    out["history"] = str(study_dir / "history.png")
    if len(done) >= 2:
        with contextlib.suppress(ValueError, RuntimeError, ZeroDivisionError):
            imp = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
            )
            if imp:
                fig, ax = plt.subplots(figsize=(6, 0.5 * len(imp) + 1.5))
                names = list(imp)[::-1]
                ax.barh(names, [imp[k] for k in names])
                ax.set_xlabel("importance (fANOVA)")
                ax.set_title(f"study {study.study_name}: parameter importance")
                fig.tight_layout()
                fig.savefig(study_dir / "importance.png", dpi=100)
                plt.close(fig)
                out["importance"] = str(study_dir / "importance.png")
    return out
