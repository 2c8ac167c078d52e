"""Inception (GoogLeNet): parallel 1x1, 3x3, 5x5 and pooling branches concatenated.

Module names follow torchvision's ``GoogLeNet`` (``conv1``.. ``inception3a``.. ``fc``,
convolutions as ``conv`` + ``bn``), so its state dicts load with ``strict=True``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.outputs import AuxLogits
from archzoo.models._classifier import ImageClassifier
from archzoo.models._variant import variant
from archzoo.registry import register_model

STEMS = ("imagenet", "small")

# (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) of each module, from the paper's table 1
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


class ConvBNReLU(nn.Module):
    r"""Convolution without bias, batch norm (eps 0.001) and ReLU, with the submodule
    names ``conv`` and ``bn`` of torchvision's GoogLeNet (``ConvBNAct`` names them by
    index, so it cannot load those weights).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (default 1).
        stride: stride (default 1).
        padding: padding (default 0).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, C_{out}, H', W')`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    r"""The Inception module: four branches over the same input, concatenated along
    channels,

    .. math::
        y = [\,f_{1\times1}(x);\ f_{3\times3}(g_{1\times1}(x));\ f_{5\times5}(g'_{1\times1}(x));\
            f'_{1\times1}(\mathrm{maxpool}_{3\times3}(x))\,]

    where the 1x1 reductions :math:`g` make the larger convolutions cheap.

    Args:
        in_channels: input channels.
        ch1x1: channels of the 1x1 branch.
        ch3x3red: reduction before the 3x3 convolution.
        ch3x3: channels of the 3x3 branch.
        ch5x5red: reduction before the "5x5" convolution.
        ch5x5: channels of the "5x5" branch.
        pool_proj: channels of the 1x1 projection after the max pool.
        kernel_5x5: kernel of the "5x5" branch (default 3, as torchvision builds it so
            that its ported weights load; the paper uses 5).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output
        :math:`(B, \text{ch1x1} + \text{ch3x3} + \text{ch5x5} + \text{pool\_proj}, H, W)`.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        kernel_5x5: int = 3,
    ) -> None:
        super().__init__()
        self.branch1 = ConvBNReLU(in_channels, ch1x1)
        self.branch2 = nn.Sequential(ConvBNReLU(in_channels, ch3x3red), ConvBNReLU(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(
            ConvBNReLU(in_channels, ch5x5red), ConvBNReLU(ch5x5red, ch5x5, kernel_5x5, padding=kernel_5x5 // 2)
        )
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), ConvBNReLU(in_channels, pool_proj))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, dim=1)  # (B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)


class InceptionAux(nn.Module):
    r"""An auxiliary classifier on an intermediate feature map: 4x4 average pooling, a
    1x1 convolution to 128 channels, a 1024-wide hidden layer with dropout, and logits.

    Args:
        in_channels: channels of the feature map.
        num_classes: classes of the logits.
        dropout: dropout before the last layer (default 0.7).

    Shapes:
        input :math:`(B, C, H, W)`, output :math:`(B, \text{num\_classes})`.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, 128)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(nn.functional.adaptive_avg_pool2d(x, 4))  # (B, 128, 4, 4)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))  # (B, 1024)
        return self.fc2(self.dropout(x))


class GoogLeNet(ImageClassifier):
    r"""GoogLeNet (Inception v1) from Szegedy et al., `"Going Deeper with Convolutions"
    <https://arxiv.org/abs/1409.4842>`_ (CVPR 2015), with batch norm after every
    convolution as in torchvision.

    A stem (``conv1``, ``maxpool1``, ``conv2``, ``conv3``, ``maxpool2``), nine
    :class:`Inception` modules in three stages separated by max pools, global average
    pooling, dropout and the linear head ``fc``.

    Args:
        num_classes: classes of the head (default 1000).
        in_channels: channels of the input image (default 3).
        aux_logits: build the two auxiliary classifiers ``aux1`` (after ``inception4a``)
            and ``aux2`` (after ``inception4d``). In training mode :meth:`forward` then returns
            :class:`~archzoo.layers.outputs.AuxLogits` (the main logits and both auxiliary
            ones), which the classification task turns into the paper's loss
            :math:`L + 0.3 (L_{aux1} + L_{aux2})`; in evaluation mode it returns the main logits
            only. :meth:`forward_with_aux` returns all three (default False).
        dropout: dropout before ``fc`` (default 0.2).
        dropout_aux: dropout in the auxiliary classifiers (default 0.7).
        stem: ``"imagenet"``: 7x7 stride-2 ``conv1`` and two stride-2 pools (stride 8);
            ``"small"``: 3x3 stride-1 ``conv1`` and no pools in the stem, for 28-32 px
            images (default ``"imagenet"``).
        width_mult: multiplies every width of the stem and the Inception modules
            (default 1.0).
        kernel_5x5: kernel of the "5x5" branches (default 3 as in torchvision; 5 as in
            the paper).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, \text{num\_classes})`.

    The head is the attribute ``fc`` (``classifier_name``); ``stages`` lists
    ``inception3`` (3a, 3b), ``inception4`` (pool, 4a-4e) and ``inception5``
    (pool, 5a, 5b). The torchvision option ``transform_input`` is not provided.
    """

    classifier_name = "fc"
    stage_names = ("inception3", "inception4", "inception5")

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
        stem: str = "imagenet",
        width_mult: float = 1.0,
        kernel_5x5: int = 3,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise UserError(f"Unknown GoogLeNet stem '{stem}'; choose one of {', '.join(STEMS)}.")
        if width_mult <= 0:
            raise UserError(f"GoogLeNet width_mult must be positive, got {width_mult}.")

        self.in_channels = in_channels

        def w(c: int) -> int:
            return max(1, int(round(c * width_mult)))

        if stem == "imagenet":
            self.conv1 = ConvBNReLU(in_channels, w(64), 7, stride=2, padding=3)
            self.maxpool1: nn.Module = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.maxpool2: nn.Module = nn.MaxPool2d(3, 2, ceil_mode=True)
        else:
            self.conv1 = ConvBNReLU(in_channels, w(64), 3, stride=1, padding=1)
            self.maxpool1 = nn.Identity()
            self.maxpool2 = nn.Identity()
        self.conv2 = ConvBNReLU(w(64), w(64))
        self.conv3 = ConvBNReLU(w(64), w(192), 3, padding=1)

        channels = w(192)
        for name, cfg in INCEPTION.items():
            module = Inception(channels, *(w(c) for c in cfg), kernel_5x5=kernel_5x5)
            self.add_module(f"inception{name}", module)
            channels = module.out_channels
            if name == "3b":
                self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
            elif name == "4e":
                self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)

        self.aux_logits = aux_logits
        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            self.aux1 = InceptionAux(self.inception4a.out_channels, num_classes, dropout_aux)
            self.aux2 = InceptionAux(self.inception4d.out_channels, num_classes, dropout_aux)

        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def stages(self) -> list[nn.Module]:
        """``inception3``, ``inception4``, ``inception5``: views over the modules of each stage."""
        return [
            nn.Sequential(self.inception3a, self.inception3b),
            nn.Sequential(
                self.maxpool3, self.inception4a, self.inception4b, self.inception4c, self.inception4d, self.inception4e
            ),
            nn.Sequential(self.maxpool4, self.inception5a, self.inception5b),
        ]

    def stem(self, x: Tensor) -> Tensor:
        x = self.maxpool1(self.conv1(x))
        return self.maxpool2(self.conv3(self.conv2(x)))

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``(logits, aux1, aux2)``; the auxiliary logits are None unless the model was
        built with ``aux_logits=True`` and is in training mode (the paper adds them to
        the loss with weight 0.3)."""
        aux1 = aux2 = None
        x = self.stem(x)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        if self.aux1 is not None and self.training:
            aux1 = self.aux1(x)
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        if self.aux2 is not None and self.training:
            aux2 = self.aux2(x)
        x = self.inception5b(self.inception5a(self.maxpool4(self.inception4e(x))))
        return self._head(x), aux1, aux2

    def _head(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (B, 1024)
        return self.fc(self.dropout(x))

    def forward(self, x: Tensor) -> Tensor | AuxLogits:
        if self.training and self.aux1 is not None and self.aux2 is not None:
            logits, aux1, aux2 = self.forward_with_aux(x)
            return AuxLogits(logits, (aux1, aux2))  # type: ignore[arg-type]
        return self._head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head ``fc`` (and the auxiliary heads' last layers) for ``num_classes`` classes."""
        super().reset_classifier(num_classes)
        for aux in (self.aux1, self.aux2):
            if aux is not None:
                aux.fc2 = nn.Linear(aux.fc2.in_features, num_classes)


@register_model()
@variant(GoogLeNet, ("num_classes", "in_channels", "stem", "aux_logits", "dropout", "dropout_aux", "kernel_5x5"))
def googlenet(**kwargs: Any) -> GoogLeNet:
    """GoogLeNet as in torchvision (batch norm, 3x3 "5x5" branches, no aux heads by default)."""
    return GoogLeNet(**kwargs)


@register_model()
@variant(
    GoogLeNet,
    ("num_classes", "in_channels", "stem", "width_mult", "aux_logits", "dropout", "dropout_aux", "kernel_5x5"),
    num_classes=10,
    stem="small",
    width_mult=0.25,
    kernel_5x5=5,
)
def inception_small(**kwargs: Any) -> GoogLeNet:
    """A GoogLeNet a quarter as wide with the small stem, for 28-32 px images, with the
    paper's 5x5 branches."""
    return GoogLeNet(**kwargs)
