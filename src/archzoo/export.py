"""``archzoo export``: a finished run's model as ONNX, a ``torch.export`` program or safetensors weights.

Each format is checked before it is kept:

* ``onnx``: torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, with onnxscript)
  traces the forward pass that the run's task names (:meth:`~archzoo.tasks.base.Task.export_forward`)
  on inputs drawn from the run's own test split, with a dynamic batch dimension (and a dynamic
  sequence length, node or edge count where the data has one). onnxruntime then runs the file at
  another batch size and its outputs must equal PyTorch's eval outputs to ``atol`` 1e-4.
* ``torch-export``: the same trace as a ``torch.export`` program, saved with ``torch.export.save``
  (``.pt2``), loaded back with ``torch.export.load`` and checked the same way.
* ``safetensors``: the weights with the run's ``config.yaml``, ``info.json`` (and the files it
  names, such as a tokenizer) and an ``export.json`` beside them, a folder that
  :func:`archzoo.load_run` opens; the check reloads it and compares every tensor.

A run whose task is not one forward pass (a sampler, a decoder loop) or whose model cannot be
traced is refused in one sentence (:attr:`~archzoo.tasks.base.Task.export_refusal` and
:data:`MODEL_REFUSALS`); a file that fails its check is removed, not left behind as if good.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.tasks.base import ExportInput, Task, to_device

FORMATS = ("onnx", "torch-export", "safetensors")
FILE_NAMES = {"onnx": "model.onnx", "torch-export": "model.pt2", "safetensors": "safetensors"}
ATOL = 1e-4

#: Registered models that cannot be traced as one forward pass of tensors, and why (checked by
#: tests/test_export.py, which also shows the exportable families export).
MODEL_REFUSALS: dict[str, str] = {
    "rgcn_node": (
        "its nodes have no feature matrix (each has a learned embedding) and its edges carry relation types, "
        "inputs beyond the node-classification export's x and edge_index"
    ),
}

_UNROLLED = (
    "torch.export traces nn.LSTM/GRU/RNN through a kernel that unrolls the time steps, which fixes the "
    "sequence length at the sample's; --format onnx keeps it dynamic (its LSTM/GRU operators take any length)"
)
#: Models one format cannot hold with their dynamic dimensions, and why (found by exporting one
#: recipe of every registered family; the other format exports them).
FORMAT_REFUSALS: dict[tuple[str, str], str] = {
    ("onnx", "gat_node"): (
        "the ONNX exporter cannot guard on the data-dependent edge count of GATConv's self-loop handling; "
        "--format torch-export holds it"
    ),
    ("onnx", "dynamic_cnn"): (
        "its per-sample kernels run as one grouped convolution whose group count is the batch size, which "
        "ONNX needs as a constant; --format torch-export holds it"
    ),
    ("torch-export", "rnn_classifier"): _UNROLLED,
    ("torch-export", "lstm_lm"): _UNROLLED,
}


def export_refusal(run: Any, fmt: str = "onnx") -> str | None:
    """The sentence refusing to trace ``run``'s model as ``fmt`` (onnx, torch-export), or None when it can be."""
    name = run.cfg.model.name
    task = run.task
    why = task.export_refusal
    if why is None:
        why = MODEL_REFUSALS.get(name)
    if why is None and (fmt, name) in FORMAT_REFUSALS:
        return f"Model '{name}' cannot be exported as {fmt}: {FORMAT_REFUSALS[fmt, name]}."
    if why is None:
        why = getattr(run.model, "export_refusal", None)
    if why is None:
        return None
    return f"Model '{name}' ({run.cfg.task.name} run) cannot be exported as a traced graph: {why}."


class _Traced(nn.Module):
    """The run's model called as the task says, on positional tensors: what the exporters trace."""

    def __init__(self, model: nn.Module, task: Task) -> None:
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.task.export_forward(self.model, *inputs)


@contextlib.contextmanager
def _traceable(model: nn.Module) -> Iterator[None]:
    """Switch off what holds one graph's tensors between calls, for the duration of an export.

    A PyG convolution built with ``cached=True`` keeps the training graph's normalised adjacency,
    which would be baked into the trace (and be wrong for any other graph), and the sparse copy of
    input features of :class:`~archzoo.models.gnn.InputDropout` is a layout the exporters do not
    take. Both are the same function in eval mode without them; they are restored after.
    """
    saved: list[tuple[nn.Module, str, Any]] = []
    for m in model.modules():
        for attr, off in (("cached", False), ("sparse", False)):
            if attr == "sparse" and type(m).__name__ != "InputDropout":
                continue
            if getattr(m, attr, None) is True:
                saved.append((m, attr, True))
                setattr(m, attr, off)
        for attr in ("_cached_edge_index", "_cached_adj_t"):
            if getattr(m, attr, None) is not None:
                saved.append((m, attr, getattr(m, attr)))
                setattr(m, attr, None)
    try:
        yield
    finally:
        for m, attr, value in reversed(saved):
            setattr(m, attr, value)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hold back the exporters' progress lines, warnings, logged errors and graph dumps: stdout carries
    the JSON summary, and a failure is reported as one sentence of its own."""
    import logging
    import warnings

    sink = io.StringIO()
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _reason(e: BaseException) -> str:
    """The root cause of an exporter failure as one short clause (no ANSI colours, no traceback)."""
    root = e
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(root)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if "Exception summary" in text:  # torch.onnx's report: the line after the heading names the cause
        after = text.split("Exception summary", 1)[1]
        found = [line.strip() for line in after.splitlines() if line.strip()]
        first = found[0] if found else first
    fixed = re.search(r"You marked (\w+) as dynamic but your code specialized it to be a constant \((\d+)\)", text)
    if fixed:
        first = f"the trace fixes dimension '{fixed.group(1)}' at {fixed.group(2)}, so it cannot stay dynamic"
    first = first.rstrip(".")
    if len(first) > 240:
        first = first[:237] + "..."
    return f"{type(root).__name__}: {first}" if first else type(root).__name__


def _dims(inputs: list[ExportInput]) -> tuple[dict[int, Any], ...]:
    """``torch.export.Dim`` objects per input dimension, one object per name (shared by inputs)."""
    named: dict[str, Any] = {}
    out = []
    for inp in inputs:
        spec = {}
        for d, name in inp.dims.items():
            if name not in named:
                cap = (inp.max_sizes or {}).get(name)
                named[name] = torch.export.Dim(name, max=cap) if cap else torch.export.Dim(name)
            spec[d] = named[name]
        out.append(spec)
    return tuple(out)


def _sample(run: Any, batch: int | None) -> tuple[list[ExportInput], list[ExportInput], str]:
    """The inputs to export with and those to check at (another batch size), from the run's data."""
    if batch is not None and batch < 2:
        raise UserError(
            f"--batch must be at least 2, got {batch}: the exporters fix a dimension of size 1 instead of keeping it dynamic."
        )
    data = run.data
    splits = [s for s in ("test", "val", "train") if _has_split(data, s)]
    if not splits:
        raise UserError(f"Run {run.run_dir} has no data split to draw sample inputs from.")
    task, model = run.task, run.model
    pool_size = (batch or 8) + 1
    for split in splits:  # the test split first; a short one (a forecast's last window) gives way to the next
        pool, available = _pool(task, data.split(split), pool_size)
        exported, checked = task.export_sizes(available, batch)
        if pool is not None and exported >= 2 and max(exported, checked) <= available:
            break
    if pool is None:
        raise UserError(f"The data splits of run {run.run_dir} yield no batch to draw sample inputs from.")
    if max(exported, checked) > available or exported < 2:
        raise UserError(
            f"The {split} split offers {available} example(s) in one batch, fewer than the {max(exported, checked, 2)} "
            f"the export needs (exported at {exported}, checked at {checked}); pass a smaller --batch."
        )
    pool = to_device(pool, torch.device("cpu"))
    try:
        inputs = task.export_inputs(model, pool, exported)
        checks = task.export_inputs(model, pool, checked, vary=True)
    except (TypeError, AttributeError, IndexError, KeyError) as e:  # a batch of another shape than the task's
        raise UserError(
            f"Model '{run.cfg.model.name}' takes batches that the {run.cfg.task.name} export cannot read ({_reason(e)})."
        ) from None
    return inputs, checks, split


def _pool(task: Task, split: Any, pool_size: int) -> tuple[Any, int]:
    """The first batch of ``split`` with ``pool_size`` examples (bucketed sequences may start with a
    short one), else the largest of its first 64, and its example count."""
    pool, available = None, 0
    for i, b in enumerate(split.batches(pool_size)):
        n = task.export_size(b)
        if n > available:
            pool, available = b, n
        if n >= pool_size or i >= 63:
            break
    return pool, available


def _has_split(data: Any, name: str) -> bool:
    try:
        data.split(name)
    except (KeyError, UserError, ValueError):
        return False
    return True


def _default_out(run: Any, fmt: str) -> Path:
    return Path(run.run_dir) / "export" / FILE_NAMES[fmt]


def _max_diff(a: Tensor, b: Tensor, what: str) -> float:
    if tuple(a.shape) != tuple(b.shape):
        raise UserError(f"{what} gives outputs of shape {tuple(a.shape)} where PyTorch gives {tuple(b.shape)}.")
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _describe(inputs: list[ExportInput]) -> list[dict[str, Any]]:
    return [
        {
            "name": i.name,
            "shape": list(i.tensor.shape),
            "dtype": str(i.tensor.dtype).removeprefix("torch."),
            "dynamic": {str(d): n for d, n in i.dims.items()},
        }
        for i in inputs
    ]


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
        Path(f"{path}.data").unlink(missing_ok=True)


def export_run(
    run: Any, fmt: str, out: str | Path | None = None, batch: int | None = None, check: bool = True
) -> dict[str, Any]:
    """Export ``run`` (a :class:`~archzoo.engine.run.Run`) as ``fmt`` and check it; returns a summary.

    Args:
        run: the opened run (its model holds the weights to export).
        fmt: ``onnx``, ``torch-export`` or ``safetensors``.
        out: the file (a folder for ``safetensors``); default ``RUN/export/model.onnx``,
            ``RUN/export/model.pt2`` or ``RUN/export/safetensors/``.
        batch: the number of examples to export with (nodes of a graph; default 8, or the whole
            graph); the check runs at another count.
        check: run the exported file and compare it with PyTorch (default True); a failed check
            is a :class:`~archzoo.errors.UserError` and the file is removed.

    Returns:
        ``path``, ``format``, ``inputs`` (name, exported shape, dtype, dynamic dimensions),
        ``output_shape``, ``exported_batch``, ``checked_batch``, ``checked_inputs`` and ``max_abs_diff``.
    """
    if fmt not in FORMATS:
        raise UserError(f"The export format must be one of {', '.join(FORMATS)}, got '{fmt}'.")
    path = Path(out) if out is not None else _default_out(run, fmt)
    model = run.model.cpu().eval()
    run.device = torch.device("cpu")
    if fmt == "safetensors":
        return _export_safetensors(run, path, check)
    refusal = export_refusal(run, fmt)
    if refusal:
        raise UserError(refusal)
    inputs, checks, split = _sample(run, batch)
    wrapper = _Traced(model, run.task).eval()
    args = tuple(i.tensor for i in inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{Path(FILE_NAMES[fmt]).suffix}")  # torch.export.load wants .pt2
    _remove(tmp)
    name = run.cfg.model.name
    try:
        with torch.no_grad(), _traceable(model), _quiet():
            if fmt == "onnx":
                torch.onnx.export(
                    wrapper,
                    args,
                    str(tmp),
                    dynamo=True,
                    dynamic_shapes=(_dims(inputs),),  # forward(*inputs): one tuple
                    input_names=[i.name for i in inputs],
                    output_names=["output"],
                    external_data=False,  # one self-contained file (weights inline; ONNX caps that at 2 GB)
                    verbose=False,
                )
            else:
                program = torch.export.export(wrapper, args, dynamic_shapes=(_dims(inputs),))
                torch.export.save(program, str(tmp))
    except UserError:
        _remove(tmp)
        raise
    except Exception as e:  # noqa: BLE001 - any exporter failure ends in one sentence, never a traceback
        _remove(tmp)
        raise UserError(f"The {fmt} exporter failed on model '{name}' ({_reason(e)}).") from None
    summary: dict[str, Any] = {
        "path": str(path),
        "format": fmt,
        "model": name,
        "recipe": run.cfg.recipe,
        "sample_split": split,
        "inputs": _describe(inputs),
        "exported_batch": int(inputs[0].tensor.shape[0]),
        "checked_batch": int(checks[0].tensor.shape[0]),
        "checked_inputs": [{"name": i.name, "shape": list(i.tensor.shape)} for i in checks],
        "max_abs_diff": None,
        "atol": ATOL,
    }
    if check:
        try:
            with torch.no_grad():
                ref = run.task.export_reference(model, *(i.tensor for i in checks)).float()
            with _quiet():
                got, checker = _run_exported(fmt, tmp, checks)
            diff = _max_diff(got, ref, f"The {fmt} export of '{name}'")
        except UserError:
            _remove(tmp)
            raise
        except Exception as e:  # noqa: BLE001 - a file the runtime cannot run is a failed check
            _remove(tmp)
            raise UserError(
                f"The {fmt} export of model '{name}' did not run at batch {summary['checked_batch']} ({_reason(e)}); "
                "it was not kept."
            ) from None
        if not diff <= ATOL:
            _remove(tmp)
            raise UserError(
                f"The {fmt} export of model '{name}' differs from PyTorch by {diff:.3g} at batch "
                f"{summary['checked_batch']} (tolerance {ATOL:g}); it was not kept."
            )
        summary["max_abs_diff"] = diff
        summary["checked_with"] = checker
        summary["output_shape"] = list(ref.shape)
    _remove(path)
    tmp.replace(path)
    return summary


def _run_exported(fmt: str, path: Path, inputs: list[ExportInput]) -> tuple[Tensor, str]:
    """The exported file's output on ``inputs``, and what ran it."""
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 4  # fatal only: a failing kernel is reported in the one sentence, not logged too
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {i.name: i.tensor.numpy() for i in inputs}
        out = session.run(None, feed)[0]
        return torch.from_numpy(out).float(), f"onnxruntime {ort.__version__} CPUExecutionProvider"
    program = torch.export.load(str(path))
    with torch.no_grad():
        out = program.module()(*(i.tensor for i in inputs))
    return out.float(), f"torch.export.load (torch {torch.__version__})"


def _export_safetensors(run: Any, path: Path, check: bool) -> dict[str, Any]:
    """The weights, ``config.yaml``, ``info.json`` (with the files it names) and ``export.json`` in folder ``path``."""
    from archzoo import __version__
    from archzoo.engine import checkpoint as ckpt
    from archzoo.engine.builders import INFO_FILE, SAVED_OBJECT

    rd = Path(run.run_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file; the safetensors export writes a folder.")
    tmp = path.with_name(f".{path.name}.tmp")
    _remove(tmp)
    tmp.mkdir(parents=True)
    try:
        weights = tmp / "model.safetensors"
        ckpt.save_weights(run.model, weights)
        shutil.copyfile(rd / "config.yaml", tmp / "config.yaml")
        info_path = rd / INFO_FILE
        if info_path.is_file():
            shutil.copyfile(info_path, tmp / INFO_FILE)
            for entry in json.loads(info_path.read_text()).values():
                if isinstance(entry, dict) and SAVED_OBJECT in entry:
                    shutil.copyfile(rd / str(entry["file"]), tmp / str(entry["file"]))
        state = ckpt.state_dict_of(run.model)
        meta = {
            "format": "safetensors",
            "recipe": run.cfg.recipe,
            "model": run.cfg.model.name,
            "model_args": dict(run.cfg.model.args),
            "task": run.cfg.task.name,
            "source_run": str(rd),
            "parameters": int(sum(p.numel() for p in run.model.parameters())),
            "tensors": len(state),
            "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "archzoo": __version__,
            "torch": torch.__version__,
        }
        (tmp / "export.json").write_text(json.dumps(meta, indent=1))
        diff = None
        if check:
            from archzoo.engine.run import load_run

            again = load_run(tmp, run.data_dir)
            back = ckpt.state_dict_of(again.model)
            if back.keys() != state.keys():
                raise UserError(
                    f"The safetensors export of '{run.cfg.model.name}' reloads other tensors than it saved."
                )
            diff = max(
                (_max_diff(back[k], v, "The reloaded weights") for k, v in state.items() if v.numel()), default=0.0
            )
            if diff != 0.0:
                raise UserError(
                    f"The safetensors export of '{run.cfg.model.name}' reloads weights that differ by {diff:.3g}; it was not kept."
                )
    except BaseException:
        _remove(tmp)
        raise
    _remove(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(path)
    return {
        "path": str(path),
        "format": "safetensors",
        "model": run.cfg.model.name,
        "recipe": run.cfg.recipe,
        "files": sorted(p.name for p in path.iterdir()),
        "tensors": meta["tensors"],
        "parameters": meta["parameters"],
        "max_abs_diff": diff,
        "checked_with": "archzoo.load_run of the folder, every tensor compared" if check else None,
    }
