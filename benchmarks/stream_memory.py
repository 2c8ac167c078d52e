"""Resident memory while training on a memory-mapped token corpus of 1 GiB: bounded, not growing with the corpus.

``python benchmarks/stream_memory.py [--gib 1.0] [--work-dir DIR] [--control-gib 0.25]``

1. Writes ``--gib`` GiB of **random** uint16 token ids (uniform over ``--vocab`` ids, numpy's
   PCG64 seeded 0, written in 64 MiB chunks) to ``DIR/corpus.bin`` (a temporary folder by default).
2. Trains an LSTM language model on it through the real engine (``archzoo.engine.trainer.Trainer``
   with the ``token_file`` dataset, ``mode=streams``): ``--batch`` contiguous streams of
   ``--block`` tokens a step, for as many steps as it takes each stream to cross its share of the
   training part once, so the windows read cover the whole training part (``bytes_touched``:
   every token of it, read once, in file order).
3. A thread samples the process's ``/proc/self/status`` every 20 ms during training: ``VmRSS``,
   ``RssAnon`` (heap: tensors, the model) and ``RssFile`` (mapped file pages, the corpus among
   them). Warm-up is the first 5% of the steps; growth is the peak after it minus the value at
   its end.
4. Runs the same training without the page release (``RELEASE_BYTES`` raised above the corpus)
   over the first ``--control-gib`` GiB, as the control: there ``RssFile`` grows by what was read.

Each training runs in a child process of its own, so one run's pages never count in the other's
RSS. The target: VmRSS growth after warm-up under 200 MiB while at least 1 GiB of corpus is read.
The page cache that the reads fill is the kernel's (reclaimable, shared by every process) and is
not in any of these figures; only what this process maps is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
TARGET_MIB = 200
# The "at least 1 GB": 10^9 bytes. A 1 GiB corpus holds its validation and test parts too,
# and streams drop the tail that does not fill a block, so training reads a little under 2^30 of it.
TARGET_READ_BYTES = 10**9


def write_corpus(path: Path, gib: float, vocab: int, chunk: int = 32 * MIB) -> int:
    """``gib`` GiB of uniform random uint16 ids below ``vocab``; returns the token count."""
    n = int(gib * (1 << 30)) // 2
    rng = np.random.default_rng(0)
    done = 0
    with open(path, "wb") as f:
        while done < n:
            k = min(chunk, n - done)
            rng.integers(0, vocab, k, dtype=np.uint16).tofile(f)
            done += k
    return n


def status() -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and RssShmem of this process, in bytes."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def corpus_rss(path: str) -> int:
    """Bytes of ``path``'s mappings resident in this process (the ``Rss:`` of its entries in /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):  # a mapping's header: "addr-addr perms offset dev inode path"
                inside = line.rstrip().endswith(path)
            elif inside and head == "Rss:":
                total += int(line.split()[1]) * 1024
    return total


def child(args: argparse.Namespace) -> None:
    """One training with RSS sampling; prints a JSON line of its figures."""
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    torch.set_num_threads(1)
    from archzoo.config import config_from_dict
    from archzoo.data import splits
    from archzoo.engine.trainer import Trainer

    if args.no_release:
        splits.RELEASE_BYTES = 1 << 62
    n = Path(args.corpus).stat().st_size // 2
    read_tokens = int(args.read_gib * (1 << 30)) // 2 if args.read_gib else None
    val_fraction = 0.0005
    train_tokens = n - 2 * int(n * val_fraction)
    stream_len = train_tokens // args.batch
    steps = (stream_len - 1) // args.block  # every stream crosses its part once: the whole training part
    if read_tokens is not None:
        steps = min(steps, read_tokens // (args.batch * args.block))
    raw = {
        "recipe": "stream-memory",
        "data": {
            "name": "token_file",
            "batch_size": args.batch,
            "eval_batch_size": args.batch,
            "val_fraction": val_fraction,
            "args": {"path": args.corpus, "vocab_size": args.vocab, "block_size": args.block, "mode": "streams"},
        },
        "model": {"name": "lstm_lm", "args": {"embed_dim": 8, "hidden_size": 16, "num_layers": 1, "dropout": 0.0}},
        "task": {"name": "language_model", "args": {"carry_state": True}},
        "optim": {"name": "adam", "lr": 0.003, "scheduler": "none"},
        "train": {"epochs": 1, "max_steps": steps, "log_every": 200, "threads": 1, "device": "cpu",
                  "eval_epoch_end": True},
        "log": {"dir": args.runs, "progress": "none", "plots": False, "tensorboard": False},
    }  # fmt: skip
    cfg = config_from_dict(raw)
    samples: list[tuple[float, int, dict[str, int]]] = []
    path = str(Path(args.corpus).resolve())
    before = status()
    trainer = Trainer(cfg, run_dir=Path(args.runs) / ("control" if args.no_release else "bounded"))
    built = status()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter(), trainer.ctx.global_step, {**status(), "corpus": corpus_rss(path)}))
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    thread.start()
    results = trainer.fit()
    stop.set()
    thread.join()
    seconds = time.perf_counter() - t0
    warm = max(1, steps // 20)
    during = [s for _, st, s in samples if st < warm] or [samples[0][2]]
    after = [s for _, st, s in samples if st >= warm]
    early = [s for _, st, s in samples if warm <= st < warm + (steps - warm) // 4] or after
    late = [s for _, st, s in samples if st >= steps - (steps - warm) // 4] or after

    def peak(key: str, rows: list[dict[str, int]]) -> int:
        return max(r[key] for r in rows)

    def mib(v: int) -> float:
        return round(v / MIB, 1)

    touched = steps * args.batch * (args.block + 1) * 2  # each stream's windows, contiguous, one token of overlap
    out = {
        "release": not args.no_release,
        "corpus_bytes": n * 2,
        "steps": steps,
        "batch_size": args.batch,
        "block_size": args.block,
        "bytes_touched": touched,
        "train_seconds": round(seconds, 1),
        "samples": len(samples),
        "rss_before_build_mib": mib(before["VmRSS"]),
        "rss_start_mib": mib(built["VmRSS"]),
        # Peaks (a step allocates and frees its activations, so single samples swing within a step).
        "rss_warmup_peak_mib": mib(peak("VmRSS", during)),
        "rss_peak_mib": mib(peak("VmRSS", after)),
        "rss_growth_after_warmup_mib": mib(peak("VmRSS", after) - peak("VmRSS", during)),
        "rss_early_quarter_peak_mib": mib(peak("VmRSS", early)),
        "rss_last_quarter_peak_mib": mib(peak("VmRSS", late)),
        "anon_warmup_peak_mib": mib(peak("RssAnon", during)),
        "anon_peak_mib": mib(peak("RssAnon", after)),
        "anon_growth_after_warmup_mib": mib(peak("RssAnon", after) - peak("RssAnon", during)),
        "file_warmup_peak_mib": mib(peak("RssFile", during)),
        "file_peak_mib": mib(peak("RssFile", after)),
        "file_growth_after_warmup_mib": mib(peak("RssFile", after) - peak("RssFile", during)),
        "corpus_rss_warmup_peak_mib": mib(peak("corpus", during)),
        "corpus_rss_peak_mib": mib(peak("corpus", after)),
        "corpus_rss_end_mib": mib(samples[-1][2]["corpus"]),
        "rss_end_mib": round(samples[-1][2]["VmRSS"] / MIB, 1),
        "releases": trainer.data.train.releases,
        "val_loss": round(results.get("val/loss", float("nan")), 4),
        # A curve for the record: (step, VmRSS, RssAnon, RssFile, the corpus's resident MiB) at about 50 points.
        "curve": [
            [st, mib(s["VmRSS"]), mib(s["RssAnon"]), mib(s["RssFile"]), mib(s["corpus"])]
            for _, st, s in samples[:: max(1, len(samples) // 50)]
        ],
    }
    print("RESULT " + json.dumps(out))


def run_child(corpus: Path, runs: Path, a: argparse.Namespace, no_release: bool, read_gib: float | None) -> dict:
    cmd = [sys.executable, __file__, "--child", "--corpus", str(corpus), "--runs", str(runs),
           "--vocab", str(a.vocab), "--batch", str(a.batch), "--block", str(a.block)]  # fmt: skip
    if no_release:
        cmd.append("--no-release")
    if read_gib:
        cmd += ["--read-gib", str(read_gib)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        raise SystemExit(f"the training child failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gib", type=float, default=1.0, help="corpus size in GiB (default 1)")
    p.add_argument("--work-dir", help="where the corpus and runs go (default: a temporary folder)")
    p.add_argument("--vocab", type=int, default=16)
    # 256 streams: each maps its own page-cache folio (up to 2 MiB) at a time, so the corpus's resident
    # pages between two releases are about streams x folio; 1024 streams would map more than a 1 GiB corpus.
    p.add_argument("--batch", type=int, default=256, help="streams (default 256)")
    p.add_argument("--block", type=int, default=1024, help="tokens per stream per step (default 1024)")
    p.add_argument("--control-gib", type=float, default=0.25, help="GiB the control run (no release) reads")
    p.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/stream_memory.json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--corpus", help=argparse.SUPPRESS)
    p.add_argument("--runs", help=argparse.SUPPRESS)
    p.add_argument("--no-release", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--read-gib", type=float, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a)
        return
    with tempfile.TemporaryDirectory(dir=a.work_dir) as tmp:
        corpus = Path(tmp) / "corpus.bin"
        t0 = time.perf_counter()
        tokens = write_corpus(corpus, a.gib, a.vocab)
        print(
            f"wrote {tokens:,} random tokens ({corpus.stat().st_size / MIB:.0f} MiB) in {time.perf_counter() - t0:.1f} s"
        )
        bounded = run_child(corpus, Path(tmp) / "runs", a, no_release=False, read_gib=None)
        print({k: v for k, v in bounded.items() if k != "curve"})
        control = run_child(corpus, Path(tmp) / "runs", a, no_release=True, read_gib=a.control_gib)
        print({k: v for k, v in control.items() if k != "curve"})
    growth = bounded["rss_growth_after_warmup_mib"]
    read_gib = bounded["bytes_touched"] / (1 << 30)
    meets = growth < TARGET_MIB and bounded["bytes_touched"] >= TARGET_READ_BYTES
    summary = (
        f"LSTM LM (token_file, streams mode) over a {bounded['corpus_bytes'] / (1 << 30):.2f} GiB memory-mapped "
        f"corpus of random uint16 tokens, {bounded['steps']} steps of {bounded['batch_size']}x{bounded['block_size']} "
        f"tokens reading {read_gib:.2f} GiB of it in file order: VmRSS {bounded['rss_start_mib']:.0f} MiB after "
        f"building, peak {bounded['rss_warmup_peak_mib']:.0f} in warm-up (5% of steps) and "
        f"{bounded['rss_peak_mib']:.0f} after; growth after warm-up {growth:.0f} MiB (anon "
        f"{bounded['anon_growth_after_warmup_mib']:.0f}, file {bounded['file_growth_after_warmup_mib']:.0f}); the "
        f"corpus's own resident pages peaked at {bounded['corpus_rss_peak_mib']:.0f} MiB ({bounded['releases']} page "
        f"releases). Control without the release, reading {control['bytes_touched'] / (1 << 30):.2f} GiB: the "
        f"corpus's pages grew to {control['corpus_rss_peak_mib']:.0f} MiB and VmRSS by "
        f"{control['rss_growth_after_warmup_mib']:.0f} MiB"
    )
    print(summary)
    if not a.no_write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _common import write_result

        write_result(
            "stream_memory",
            {
                "value": growth,
                "unit": "MiB",
                "target": f"< {TARGET_MIB} MiB growth while reading >= 1 GB",
                "meets_target": bool(meets),
                "anchor": None,
                "anchor_source": None,
                "summary": summary,
                "corpus": "random uint16 tokens (numpy PCG64, seed 0), uniform over the vocabulary",
                "vocab_size": a.vocab,
                "bounded": bounded,
                "control_without_release": control,
                "command": "python benchmarks/stream_memory.py " + " ".join(sys.argv[1:]),
            },
        )


if __name__ == "__main__":
    main()
