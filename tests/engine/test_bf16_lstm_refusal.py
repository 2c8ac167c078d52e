"""train.precision=bf16 refuses an LSTM on a CPU whose oneDNN has no bf16 LSTM (no AVX-512), in one sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from archzoo.engine.trainer import bf16_refusal, probe_bf16_faster

CAP = torch.backends.cpu.get_cpu_capability()
AVX512 = CAP.startswith("AVX512")


def test_the_refusal_names_the_lstm_and_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    lstm = nn.Sequential(nn.Embedding(10, 4), nn.LSTM(4, 8, batch_first=True))
    gru = nn.Sequential(nn.Embedding(10, 4), nn.GRU(4, 8, batch_first=True))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    why = bf16_refusal(lstm)
    assert why is not None and "LSTM" in why and "AVX2" in why and "train.precision=fp32" in why
    assert bf16_refusal(gru) is None  # only the LSTM goes through oneDNN's bf16 kernel
    assert probe_bf16_faster(lstm, None, None, torch.device("cpu")) is False  # auto never picks it
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert bf16_refusal(lstm) is None


@pytest.mark.skipif(not AVX512, reason=f"this CPU ({CAP}) has no AVX-512: the other test covers it")
def test_an_avx512_cpu_runs_a_bf16_lstm() -> None:
    # The premise of the refusal: where it is not given, the kernel runs.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = nn.LSTM(8, 16, batch_first=True)(torch.randn(3, 7, 8))
    assert out.shape == (3, 7, 16)


@pytest.mark.skipif(AVX512, reason=f"this CPU ({CAP}) runs a bf16 LSTM: nothing to refuse")
def test_a_bf16_lstm_run_ends_in_one_sentence_here(tmp_path: Path) -> None:
    # The premise: without AVX-512 the kernel itself raises, with no word of why.
    with pytest.raises(RuntimeError, match="LSTM"), torch.autocast("cpu", dtype=torch.bfloat16):
        nn.LSTM(8, 16, batch_first=True)(torch.randn(3, 7, 8))
    cmd = [
        sys.executable, "-m", "archzoo", "train", "--run-dir", str(tmp_path / "run"), "sum10-lstm",
        "train.precision=bf16", "train.max_steps=1", "log.progress=none",
    ]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("archzoo: error: train.precision=bf16 cannot train this model")
