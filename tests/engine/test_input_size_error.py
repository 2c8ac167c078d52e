"""A model that does not take the data's image size: one sentence naming both sizes, no shape traceback."""

from __future__ import annotations

import torch

from archzoo.cli import main
from archzoo.engine.trainer import smallest_image_size
from archzoo.models.alexnet import alexnet
from archzoo.models.cnn import lenet5


def test_smallest_image_size_bisects_to_the_first_size_that_fits() -> None:
    model = alexnet(num_classes=10, in_channels=1).eval()  # the 11x11 stride-4 stem
    assert smallest_image_size(model, torch.zeros(2, 1, 28, 28)) == 63
    # A head built for one size takes no other: there is no smallest size to name.
    assert smallest_image_size(lenet5(in_channels=1, image_size=28).eval(), torch.zeros(2, 1, 20, 20)) is None


def test_train_names_the_model_the_input_and_the_smallest_size(capsys) -> None:
    rc = main(["train", "digits-cnn", "model.name=alexnet", "model.args={}", "log.progress=none", "train.threads=1"])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    assert "Model 'alexnet' does not fit dataset 'digits'" in err
    assert "1x8x8" in err and "at least 63x63 pixels" in err and "model.args.stem=small" in err
