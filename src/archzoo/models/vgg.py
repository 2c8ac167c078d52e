"""VGG: stacks of 3x3 convolutions and max pools, then three fully connected layers.

Module names follow torchvision's ``VGG`` (a flat ``features`` sequence, ``avgpool``,
``classifier``), so its state dicts load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.init import init_cnn_
from archzoo.models._classifier import ImageClassifier
from archzoo.models._variant import variant
from archzoo.registry import register_model

# Convolution widths, with "M" for a 2x2 max pool; each pool closes a block (stage).
CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
STEMS = ("imagenet", "small")


class VGG(ImageClassifier):
    r"""VGG from Simonyan and Zisserman, `"Very Deep Convolutional Networks for Large-Scale
    Image Recognition" <https://arxiv.org/abs/1409.1556>`_ (ICLR 2015).

    Blocks of 3x3 convolutions (padding 1) with ReLU, optionally batch norm, each block
    closed by a 2x2 max pool, then adaptive average pooling and a three-layer classifier:

    .. math::
        v = \mathrm{vec}(\mathrm{pool}(f(x))), \quad
        h_1 = \mathrm{drop}(\mathrm{ReLU}(W_1 v + b_1)), \quad
        h_2 = \mathrm{drop}(\mathrm{ReLU}(W_2 h_1 + b_2)), \quad
        y = W_3 h_2 + b_3

    Args:
        config: widths of the convolutions, ``"M"`` for a max pool (see ``CONFIGS``).
        num_classes: classes of the head (default 1000).
        in_channels: channels of the input image (default 3).
        batch_norm: batch norm after every convolution (default False).
        dropout: dropout before the second and third linear layers (default 0.5).
        stem: ``"imagenet"``: the paper's layout, pooled to 7x7 with 4096-wide hidden
            layers; ``"small"``: for 28-32 px images, the last max pool is dropped (a
            28 px image would vanish after five), features are pooled to 1x1 and the hidden
            layers are 512 wide (default ``"imagenet"``).

    Shapes:
        input :math:`(B, C_{in}, H, W)` with :math:`H, W \ge 32` (``"imagenet"``) or
        :math:`\ge 16` (``"small"``), output :math:`(B, \text{num\_classes})`.

    The head is the attribute ``classifier`` (``classifier_name``); ``stages`` lists the
    blocks ``block1``.. as slices of ``features`` (there is no separate stem).
    """

    has_stem = False
    stage_prefix = "block"

    def __init__(
        self,
        config: Sequence[int | str],
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        dropout: float = 0.5,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise UserError(f"Unknown VGG stem '{stem}'; choose one of {', '.join(STEMS)}.")
        self.in_channels = in_channels
        config = list(config)
        if stem == "small" and config[-1] == "M":
            config = config[:-1]
        pool_size, hidden = (7, 4096) if stem == "imagenet" else (1, 512)

        layers: list[nn.Module] = []
        self._bounds: list[tuple[int, int]] = []  # [start, end) of each block in `features`
        start, channels = 0, in_channels
        for v in config:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                self._bounds.append((start, len(layers)))
                start = len(layers)
                continue
            layers.append(nn.Conv2d(channels, int(v), 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(v)))
            layers.append(nn.ReLU(inplace=True))
            channels = int(v)
        if start < len(layers):
            self._bounds.append((start, len(layers)))
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Linear(channels * pool_size * pool_size, hidden),
            nn.ReLU(True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

        init_cnn_(self)

    @property
    def stages(self) -> list[nn.Module]:
        """The convolutional blocks in order, each a slice of ``features`` ending in its pool."""
        return [self.features[a:b] for a, b in self._bounds]

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)  # (B, 512, H', W')


# What every VGG variant accepts; the defaults are VGG's.
VGG_ARGS = ("num_classes", "in_channels", "stem", "dropout")


@register_model()
@variant(VGG, VGG_ARGS)
def vgg16(**kwargs: Any) -> VGG:
    """VGG-16 (configuration D): 13 convolutions in five blocks."""
    return VGG(CONFIGS["vgg16"], batch_norm=False, **kwargs)


@register_model()
@variant(VGG, VGG_ARGS)
def vgg16_bn(**kwargs: Any) -> VGG:
    """VGG-16 with batch norm after every convolution."""
    return VGG(CONFIGS["vgg16"], batch_norm=True, **kwargs)


@register_model()
@variant(VGG, VGG_ARGS)
def vgg11(**kwargs: Any) -> VGG:
    """VGG-11 (configuration A): 8 convolutions in five blocks."""
    return VGG(CONFIGS["vgg11"], batch_norm=False, **kwargs)


@register_model()
@variant(VGG, VGG_ARGS)
def vgg11_bn(**kwargs: Any) -> VGG:
    """VGG-11 with batch norm after every convolution."""
    return VGG(CONFIGS["vgg11"], batch_norm=True, **kwargs)
