"""One self-contained HTML report of a run: ``archzoo report RUN``, and written at the end of training.

The page loads nothing: every figure is a PNG inside it as a ``data:`` URI, and the styles are inline.
It holds, where the run has them:

- the facts of the run (model, parameters, epochs, time, machine) and its final metrics beside the
  recipe's published anchor (``anchor:`` in the recipe);
- the loss and metric curves (from ``metrics.csv``);
- the confusion matrix of a classification run (``confusion.json``, written by the trainer);
- sample grids (``samples/``), a language model's generated text, a sequence model's attention;
- maps: feature maps of an image model's first test image, a ViT's attention, node embeddings, and any
  picture ``archzoo viz`` wrote into the run;
- the LR finder's plot and, for a trial of ``archzoo tune``, the study's history and importance plots;
- the resolved config.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import tempfile
from pathlib import Path
from typing import Any

from archzoo.errors import UserError
from archzoo.utils import read_metrics

REPORT = "report.html"
# Folders of a run whose pictures the report shows, and the heading they go under.
MAP_DIRS = {"features": "Feature maps", "attention": "Attention", "embeddings": "Embeddings"}
MAX_SAMPLE_GRIDS = 4  # the newest grids under samples/


def write_report(run: Any, out: Path | None = None, *, maps: bool = True, draw: bool = True) -> Path:
    """Write ``RUN/report.html`` (or ``out``) for ``run``: a run directory, or a loaded :class:`Run`.

    A directory is opened with its final weights (its last checkpoint when it did not finish;
    without weights the report holds what the files say). ``maps=False`` draws no new maps;
    ``draw=False`` draws and generates nothing (training with ``log.plots=false``): the page then
    holds the tables, the config and the pictures already in the run.
    """
    loaded = run if hasattr(run, "run_dir") else _open(Path(run))
    rd = Path(loaded.run_dir if loaded is not None else run)
    if not (rd / "config.yaml").is_file():
        raise UserError(f"{rd} is not a run directory (it has no config.yaml).")
    out = Path(out) if out else rd / REPORT
    page = _Page(rd)
    with tempfile.TemporaryDirectory(prefix="archzoo-report-") as tmp:
        tmpdir = Path(tmp)
        page.facts()
        page.metrics()
        page.curves(tmpdir, draw)
        if draw:
            page.confusion(tmpdir)
        page.samples(loaded, tmpdir, draw)
        page.maps(loaded if maps and draw else None)
        page.tools()
        page.config()
        text = page.html()
    out.parent.mkdir(parents=True, exist_ok=True)
    from archzoo.engine.checkpoint import atomic_write_bytes

    atomic_write_bytes(out, text.encode())
    return out


def _open(rd: Path) -> Any:
    """The run with its final (else last) weights, or None when it has none to load."""
    from archzoo.engine.run import load_run

    if not (rd / "config.yaml").is_file():
        raise UserError(f"{rd} is not a run directory (it has no config.yaml).")
    for weights in ("final", "last"):
        try:
            return load_run(rd, weights=weights)
        except UserError:
            continue
    return None


def _png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


class _Page:
    """The report's sections, added in order."""

    def __init__(self, rd: Path) -> None:
        self.rd = rd
        self.parts: list[str] = []
        self.cfg_text = (rd / "config.yaml").read_text(errors="replace")
        import yaml

        try:
            self.cfg = yaml.safe_load(self.cfg_text) or {}
        except yaml.YAMLError as e:
            raise UserError(f"{rd / 'config.yaml'} is not valid YAML ({str(e).splitlines()[0]}).") from None
        self.results = self._json("results.json") or {}

    def _json(self, name: str) -> Any:
        p = self.rd / name
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError):
            raise UserError(f"{p} is not valid JSON; the run's files are damaged.") from None

    def section(self, title: str, body: str) -> None:
        self.parts.append(f"<section><h2>{html.escape(title)}</h2>\n{body}\n</section>")

    def figure(self, path: Path, caption: str) -> str:
        cap = html.escape(caption)
        return f'<figure><img src="{_png(path)}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'

    # ----------------------------------------------------------------- sections

    def facts(self) -> None:
        r, cfg = self.results, self.cfg
        rows = [
            ("recipe", cfg.get("recipe")),
            ("model", (cfg.get("model") or {}).get("name")),
            ("task", (cfg.get("task") or {}).get("name")),
            ("data", (cfg.get("data") or {}).get("name")),
            ("parameters", f"{r['parameters']:,}" if "parameters" in r else None),
            ("epochs run", r.get("epochs_run")),
            ("optimizer steps", r.get("steps_run")),
            ("best epoch", r.get("best_epoch")),
            ("stopped early", r.get("stopped_early")),
            ("stopped for time", r.get("stopped_for_time")),
            ("training time", f"{r['train_seconds']:.1f} s" if "train_seconds" in r else None),
            ("precision", r.get("precision")),
            ("processes", r.get("world_size")),
        ]
        m = r.get("machine")
        if m:
            where = m.get("gpu") or f"{m.get('cpu', 'CPU')}, {m.get('torch_threads')} torch threads"
            rows.append(("machine", f"{where}; torch {m.get('torch')}; load {m.get('load_average_1min')}"))
        if not r:
            rows.append(("status", "unfinished: the run has no results.json"))
        body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows if v is not None)
        desc = cfg.get("description") or ""
        self.section("Run", (f"<p>{html.escape(desc)}</p>" if desc else "") + f"<table>{body}</table>")

    def metrics(self) -> None:
        metrics = self.results.get("metrics") or {}
        if not metrics:
            return
        anchor = self.cfg.get("anchor") or {}
        a_metric, a_value = anchor.get("metric"), anchor.get("value")
        anchored = a_value is not None and a_metric in metrics
        rows = []
        for k, v in metrics.items():
            if not anchored:
                rows.append(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>")
                continue
            ref = f"{_fmt(a_value)} ({html.escape(anchor.get('source') or 'published')})" if k == a_metric else ""
            cls = ' class="anchored"' if ref else ""
            rows.append(f"<tr{cls}><th>{html.escape(k)}</th><td>{_fmt(v)}</td><td>{ref}</td></tr>")
        head = "<tr><th>metric</th><th>this run</th>" + ("<th>anchor</th>" if anchored else "") + "</tr>"
        note = ""
        if a_value is not None and not anchored:
            note = f"<p>The recipe's anchor is {html.escape(a_metric)} = {_fmt(a_value)}, which this run did not report.</p>"
        self.section("Final metrics", f"<table>{head}{''.join(rows)}</table>{note}")

    def curves(self, tmp: Path, draw: bool) -> None:
        csv = self.rd / "metrics.csv"
        if not csv.is_file() or not read_metrics(csv):
            return
        from archzoo.viz.curves import curve_series, plot_curves_grid

        drawn = [self.rd / "plots" / f"{m}.png" for m in sorted(curve_series(csv))]
        if drawn and all(p.is_file() for p in drawn):  # log.plots drew them at the end of training
            self.section("Curves", "".join(self.figure(p, f"{p.stem} per epoch") for p in drawn))
            return
        path = plot_curves_grid(csv, tmp / "curves.png") if draw else None
        if path is not None:
            self.section("Curves", self.figure(path, "train and validation metrics per epoch (metrics.csv)"))

    def confusion(self, tmp: Path) -> None:
        c = self._json("confusion.json")
        if not c:
            return
        path = _draw_confusion(c["matrix"], c.get("classes"), tmp / "confusion.png", c.get("split", "test"))
        self.section("Confusion matrix", self.figure(path, f"{c.get('split', 'test')} split: true class by row"))

    def _drawn_samples(self, run: Any, out: Path) -> list[str]:
        """What ``archzoo sample RUN`` would draw (a diffusion model in 50 DDIM steps), as figures."""
        import inspect

        from archzoo.tasks.base import Picture
        from archzoo.utils import unwrap
        from archzoo.viz.grid import draw

        sampler = getattr(unwrap(run.model), "sample", None)
        steps = 50 if sampler is not None and "steps" in inspect.signature(sampler).parameters else None
        figures = []
        for item in run.task.sample(run, out, n=64, seed=0, steps=steps, **{"class": None}):
            path = draw(item) if isinstance(item, Picture) else Path(item)
            if path.suffix == ".png":
                figures.append(self.figure(path, f"{path.stem} (archzoo sample, seed 0)"))
        return figures

    def samples(self, run: Any, tmp: Path, draw: bool) -> None:
        body = []
        grids = sorted((self.rd / "samples").glob("*.png"))[-MAX_SAMPLE_GRIDS:]
        body += [self.figure(p, f"samples/{p.name}") for p in grids]
        if (
            not grids
            and draw
            and run is not None
            and hasattr(run.task, "sample_options")
            and "n" in run.task.sample_options
        ):
            body += self._drawn_samples(run, tmp / "samples")
        if (self.rd / "attention.png").is_file():
            body.append(self.figure(self.rd / "attention.png", "attention of the validation probe"))
        if draw and run is not None and run.cfg.task.name == "language_model":
            texts = run.task.sample(run, tmp / "text", tokens=300, seed=0)
            for p in texts:
                text = Path(p).read_text(errors="replace")
                body.append(f"<h3>Generated text (300 tokens, seed 0)</h3><pre>{html.escape(text)}</pre>")
        if body:
            self.section("Samples", "".join(body))

    def maps(self, run: Any) -> None:
        if run is not None:
            _draw_maps(run)
        body = []
        for folder, title in MAP_DIRS.items():
            pics = sorted((self.rd / folder).rglob("*.png")) if (self.rd / folder).is_dir() else []
            if pics:
                body.append(f"<h3>{html.escape(title)}</h3>")
                body += [self.figure(p, str(p.relative_to(self.rd))) for p in pics]
        if body:
            self.section("Maps", "".join(body))

    def tools(self) -> None:
        body = []
        lr = self.rd / "plots" / "lr_find.png"
        if lr.is_file():
            body.append(self.figure(lr, "LR finder: smoothed loss against the learning rate"))
        if self.rd.parent.name == "trials":  # a trial of archzoo tune: RUN is STUDY/trials/<name>
            study = self.rd.parent.parent
            for name, caption in (("history.png", "study history"), ("importance.png", "parameter importance")):
                if (study / name).is_file():
                    body.append(self.figure(study / name, f"tune: {caption}"))
        if body:
            self.section("Tools", "".join(body))

    def config(self) -> None:
        self.section("Resolved config", f"<pre>{html.escape(self.cfg_text)}</pre>")

    def html(self) -> str:
        title = f"archzoo run {self.cfg.get('recipe') or ''}: {self.rd.name}"
        when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f'<h1>{html.escape(title)}</h1><p class="where">{html.escape(str(self.rd))}, written {when}</p>'
            + "\n".join(self.parts)
            + "</body></html>\n"
        )


CSS = (
    "body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    "tr.anchored{background:#eef6ee}figure{display:inline-block;margin:.5em;vertical-align:top}"
    "img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.85em;color:#555}"
    "pre{background:#f6f6f6;padding:.8em;overflow:auto;max-height:28em}.where{color:#666}"
)


def _draw_confusion(matrix: list[list[int]], classes: list[str] | None, path: Path, split: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    c = m.shape[0]
    rows = m.sum(1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    size = min(3 + 0.45 * c, 14)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=90)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    names = [str(n) for n in classes] if classes and len(classes) == c else [str(i) for i in range(c)]
    if c <= 30:
        ax.set_xticks(range(c), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(c), names, fontsize=8)
    if c <= 15:
        for i in range(c):
            for j in range(c):
                ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(m) / max(m.sum(), 1)
    ax.set_title(f"{split}: {int(m.sum())} examples, accuracy {acc:.4f}")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _draw_maps(run: Any) -> None:
    """Draw into the run the maps its model has: a ViT's attention and a CNN's feature maps for the
    first test image, or a node classifier's embeddings. Maps already drawn are kept."""
    from archzoo.utils import unwrap

    model, info, rd = unwrap(run.model), run.info, Path(run.run_dir)
    if info.get("kind") == "image" and run.data.test is not None and len(run.data.test):
        if callable(getattr(model, "attention_maps", None)) and not (rd / "attention").is_dir():
            from archzoo.viz.attention import viz_image_attention

            viz_image_attention(run, "0")
        elif callable(getattr(model, "feature_maps", None)) and not (rd / "features").is_dir():
            from archzoo.viz.attention import image_attention_input
            from archzoo.viz.features import write_features

            x, _ = image_attention_input(run, "0")
            write_features(model, x.to(next(model.parameters()).device), rd / "features")
    elif run.cfg.task.name == "node_classification" and not (rd / "embeddings").is_dir():
        from archzoo.viz.embeddings import viz_embeddings

        viz_embeddings(run, "pca")
