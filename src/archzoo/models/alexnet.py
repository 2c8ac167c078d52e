"""AlexNet: five convolutions with overlapping max pools, then three fully connected layers.

Module names and widths follow torchvision's ``AlexNet`` (the single-tower variant of
Krizhevsky's "One weird trick", https://arxiv.org/abs/1404.5997), so its state dicts load
with ``strict=True``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.models._classifier import ImageClassifier
from archzoo.models._variant import variant
from archzoo.registry import register_model

STEMS = ("imagenet", "small")


class AlexNet(ImageClassifier):
    r"""AlexNet from Krizhevsky, Sutskever and Hinton, `"ImageNet Classification with Deep
    Convolutional Neural Networks"
    <https://papers.nips.cc/paper/2012/hash/c399862d3b9d6b76c8436e924a68c45b-Abstract.html>`_
    (NeurIPS 2012).

    ``features``: conv 11x11/4 (64) - pool - conv 5x5 (192) - pool - conv 3x3 (384) -
    conv 3x3 (256) - conv 3x3 (256) - pool, each convolution followed by ReLU and each pool
    a 3x3 stride-2 (overlapping) max pool; then adaptive average pooling and

    .. math::
        h_1 = \mathrm{ReLU}(W_1\, \mathrm{drop}(v) + b_1), \quad
        h_2 = \mathrm{ReLU}(W_2\, \mathrm{drop}(h_1) + b_2), \quad
        y = W_3 h_2 + b_3

    with :math:`v` the flattened pooled features.

    Args:
        num_classes: classes of the head (default 1000).
        in_channels: channels of the input image (default 3).
        dropout: dropout before the first two linear layers (default 0.5).
        stem: ``"imagenet"``: the 11x11 stride-4 first convolution, features pooled to
            6x6 and 4096-wide hidden layers (inputs of at least 63 px); ``"small"``: a 3x3
            stride-1 first convolution, features pooled to 2x2 and 1024-wide hidden layers,
            for 28-32 px images (default ``"imagenet"``).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, \text{num\_classes})`.

    The head is the attribute ``classifier`` (``classifier_name``); ``stages`` lists
    ``conv1``..``conv5``, each a slice of ``features`` with its ReLU and pool.
    """

    has_stem = False
    stage_names = ("conv1", "conv2", "conv3", "conv4", "conv5")
    _bounds = ((0, 3), (3, 6), (6, 8), (8, 10), (10, 13))  # [start, end) of each stage in `features`

    def __init__(
        self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, stem: str = "imagenet"
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise UserError(f"Unknown AlexNet stem '{stem}'; choose one of {', '.join(STEMS)}.")
        self.in_channels = in_channels
        if stem == "imagenet":
            self.example_hw = (64, 64)  # the 11x11 stride-4 stem needs at least 63 px
            first = nn.Conv2d(in_channels, 64, 11, stride=4, padding=2)
            pool_size, hidden = 6, 4096
        else:
            first = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1)
            pool_size, hidden = 2, 1024
        self.features = nn.Sequential(
            first,
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.num_features = 256
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * pool_size * pool_size, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    @property
    def stages(self) -> list[nn.Module]:
        """``conv1``..``conv5`` in order, each a slice of ``features``."""
        return [self.features[a:b] for a, b in self._bounds]

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)  # (B, 256, H', W')


@register_model()
@variant(AlexNet, ("num_classes", "in_channels", "stem", "dropout"))
def alexnet(**kwargs: Any) -> AlexNet:
    """AlexNet as in torchvision (64-192-384-256-256 convolutions)."""
    return AlexNet(**kwargs)
