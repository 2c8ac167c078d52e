"""A base for small CNNs built as a stem, a list of stages, global pooling and a head.

Subclasses set ``in_channels``, ``stem``, ``stages`` (an ``nn.ModuleList``), ``num_features``,
``avgpool`` and ``classifier`` (a sequence ending in a linear layer); this class
gives them the interface every archzoo CNN shares: ``forward``,
``forward_features``, ``feature_maps``, ``get_classifier``, ``reset_classifier`` and
``example_input``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from archzoo.models._example import ImageInput


class StemStagesNet(ImageInput, nn.Module):
    classifier_name = "classifier"
    stem: nn.Module
    stages: nn.ModuleList
    avgpool: nn.Module
    classifier: nn.Sequential
    num_features: int

    def feature_maps(self, x: Tensor) -> list[tuple[str, Tensor]]:
        """``("stem", ...)`` then ``("stage1", ...)``.. : the output of each stage."""
        x = self.stem(x)
        maps = [("stem", x)]
        for i, stage in enumerate(self.stages):
            x = stage(x)
            maps.append((f"stage{i + 1}", x))
        return maps

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x  # (B, num_features, H', W')

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)  # (B, num_features)
        return self.classifier(x)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the linear layer of ``classifier`` for ``num_classes`` classes."""
        self.classifier[-1] = nn.Linear(self.num_features, num_classes)
