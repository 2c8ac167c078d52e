"""The Transformer seq2seq recipes: the GRU recipes' data, and model arguments the builder takes."""

from __future__ import annotations

import pytest

from archzoo.config import load_config
from archzoo.registry import create_model

TASKS = ["reverse", "sort", "dates", "addition", "fra"]


@pytest.mark.parametrize("task", TASKS)
def test_recipe_trains_on_the_gru_recipes_data(task: str) -> None:
    tf, gru = load_config(f"{task}-transformer", None, []), load_config(f"{task}-gru", None, [])
    assert tf.data == gru.data  # the same strings, splits and batch sizes
    assert tf.task.name == gru.task.name == "seq2seq" and tf.task.args == gru.task.args
    assert tf.model.name == "transformer" and tf.train.threads == 1
    model = create_model("transformer", src_vocab_size=20, tgt_vocab_size=20, **tf.model.args)
    assert model.dim == tf.model.args["dim"]
