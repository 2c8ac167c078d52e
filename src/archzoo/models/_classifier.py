"""The interface every archzoo image classifier shares, written once.

A classifier has an optional stem, a sequence of ``stages``, global pooling
(``avgpool``) and a head (the attribute named by ``classifier_name``). From these
:class:`ImageClassifier` gives:

* ``forward_features(x)``: the stem and every stage, :math:`(B, C, H', W')`;
* ``forward(x)``: the head on the pooled, flattened features;
* ``feature_maps(x)``: ``("stem", ...)`` (when there is a stem) and then each stage's
  output under its name, which ``archzoo viz features`` draws;
* ``get_classifier()`` / ``reset_classifier(num_classes)``: the head, and a fresh last
  linear layer for another number of classes (fine-tuning);
* ``example_input(batch_size)``: an image batch (:class:`~archzoo.models._example.ImageInput`).

Subclasses set ``in_channels`` and ``num_features`` and provide ``stages`` (a list
property or an ``nn.ModuleList``) and, when ``has_stem``, ``stem`` (a module or a
method). Stage names are ``stage_names`` when given, else ``f"{stage_prefix}{i}"``
counting from 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from archzoo.models._example import ImageInput


class ImageClassifier(ImageInput, nn.Module):
    classifier_name: str = "classifier"
    has_stem: bool = True
    stage_prefix: str = "stage"
    stage_names: tuple[str, ...] = ()
    stages: Sequence[nn.Module]
    avgpool: nn.Module
    num_features: int

    def named_stages(self) -> list[tuple[str, nn.Module]]:
        stages = list(self.stages)
        names = self.stage_names or tuple(f"{self.stage_prefix}{i + 1}" for i in range(len(stages)))
        return list(zip(names, stages, strict=True))

    def feature_maps(self, x: Tensor) -> list[tuple[str, Tensor]]:
        """``("stem", ...)`` (models with a stem), then ``(name, output)`` of each stage in order."""
        maps = []
        if self.has_stem:
            x = self.stem(x)
            maps.append(("stem", x))
        for name, stage in self.named_stages():
            x = stage(x)
            maps.append((name, x))
        return maps

    def forward_features(self, x: Tensor) -> Tensor:
        if self.has_stem:
            x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x  # (B, num_features, H', W')

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)  # (B, num_features * pooled size)
        return self.get_classifier()(x)

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head's last linear layer (the head itself when it is one) for ``num_classes`` classes."""
        head = self.get_classifier()
        if isinstance(head, nn.Linear):
            setattr(self, self.classifier_name, nn.Linear(head.in_features, num_classes))
        else:
            head[-1] = nn.Linear(head[-1].in_features, num_classes)
