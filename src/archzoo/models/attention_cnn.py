"""A small CNN with spatial-attention gated convolutions and squeeze-and-excitation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.attention_conv import SpatialAttentionConv2d
from archzoo.layers.conv import ConvBNAct
from archzoo.layers.se import SqueezeExcitation
from archzoo.models._classifier import ImageClassifier
from archzoo.models._variant import variant
from archzoo.registry import register_model


class AttentionCNN(ImageClassifier):
    r"""A small CNN whose stages gate their features in space and in channels.

    Each stage is a :class:`~archzoo.layers.attention_conv.SpatialAttentionConv2d`
    (a convolution gated by a CBAM spatial map,
    :math:`h \leftarrow \sigma(f([\mathrm{mean}_c h; \max_c h])) \odot h`), a 3x3
    :class:`~archzoo.layers.ConvBNAct`, and optionally a
    :class:`~archzoo.layers.se.SqueezeExcitation` channel gate
    (:math:`h \leftarrow \sigma(W_2 \delta(W_1 \mathrm{GAP}(h))) \odot h`). A 3x3 stem comes
    first; global average pooling, dropout and a linear layer last.

    Args:
        num_classes: classes of the head (default 10).
        in_channels: channels of the input image (default 3).
        widths: channels of each stage; every stage after the first halves the
            resolution (default ``(32, 64, 128)``).
        use_se: add squeeze-and-excitation (reduction 4) at the end of each stage
            (default True).
        dropout: dropout before the linear layer (default 0.2).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, \text{num\_classes})`.

    The head is the attribute ``classifier`` (dropout, linear); ``stem`` and ``stages``
    are module attributes; :meth:`attention_maps` returns each stage's spatial gate.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 64, 128),
        use_se: bool = True,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if not widths:
            raise UserError("AttentionCNN needs at least one stage width.")
        self.in_channels = in_channels
        self.stem = ConvBNAct(in_channels, widths[0], 3)
        stages, channels = [], widths[0]
        for i, w in enumerate(widths):
            layers: list[nn.Module] = [SpatialAttentionConv2d(channels, w, 3, 1 if i == 0 else 2), ConvBNAct(w, w, 3)]
            if use_se:
                layers.append(SqueezeExcitation(w, reduction=4))
            stages.append(nn.Sequential(*layers))
            channels = w
        self.stages = nn.ModuleList(stages)
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))

    def attention_maps(self, x: Tensor) -> list[tuple[str, Tensor]]:
        """``("stage1", gate)``.. : the spatial gate of each stage, shape :math:`(B, 1, H', W')`."""
        x = self.stem(x)
        maps = []
        for i, stage in enumerate(self.stages):
            maps.append((f"stage{i + 1}", stage[0].attention_map(x)))
            x = stage(x)
        return maps


@register_model()
@variant(AttentionCNN, ("num_classes", "in_channels", "use_se", "dropout"))
def attention_cnn(**kwargs: Any) -> AttentionCNN:
    """Three stages (32, 64, 128 channels) of spatially gated convolutions with SE."""
    return AttentionCNN(widths=(32, 64, 128), **kwargs)
