r"""Vision Transformers: ViT and a hybrid CNN-Transformer.

ViT (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", https://arxiv.org/abs/2010.11929)
cuts an image into :math:`N = (H/P)(W/P)` patches of :math:`P \times P` pixels, embeds each
linearly (a ``Conv2d`` with kernel and stride :math:`P`), prepends a learned class token and adds
learned positions:

.. math::
    z_0 = [x_\text{cls};\, x_p^1 E;\, \dots;\, x_p^N E] + E_\text{pos}, \qquad
    z_\ell = \mathrm{Block}_\ell(z_{\ell-1}), \qquad
    y = \mathrm{Head}(\mathrm{LN}(z_L^0)),

with pre-norm Transformer blocks (:class:`~archzoo.layers.transformer.TransformerBlock`).

The hybrid (the paper's section 3.1, "Hybrid Architecture") replaces the patch embedding by a
convolutional stem: :math:`k` blocks of 3x3 conv-BN-ReLU and a 2x2 max-pool turn the image into a
feature map of :math:`(H/2^k) \times (W/2^k)` positions, each of which, projected to the width
:math:`D` by a 1x1 convolution, is one token. The rest is the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.checkpoint import GradCheckpointing
from archzoo.layers.conv import ConvBNAct
from archzoo.layers.transformer import TransformerBlock
from archzoo.models._example import ImageInput
from archzoo.models._variant import variant
from archzoo.registry import register_model


class PatchEmbedding(nn.Module):
    r"""Non-overlapping :math:`P \times P` patches, each projected to :math:`D`: a ``Conv2d`` with stride :math:`P`.

    Args:
        image_size: input height = width.
        patch_size: :math:`P`; must divide ``image_size``.
        in_channels: input channels.
        dim: token width :math:`D`.

    Shapes:
        input :math:`(B, C, H, W)`, output :math:`(B, N, D)` with :math:`N = (H/P)^2`.
    """

    def __init__(self, image_size: int, patch_size: int, in_channels: int, dim: int) -> None:
        super().__init__()
        if patch_size < 1 or image_size % patch_size:
            raise UserError(f"The patch size {patch_size} must divide the image size {image_size}.")
        self.grid = image_size // patch_size
        self.num_patches = self.grid * self.grid
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class ConvStem(nn.Module):
    r"""The hybrid's tokenizer: per channel count a 3x3 conv-BN-ReLU and a 2x2 max-pool, then a 1x1 projection.

    Args:
        image_size: input height = width; must be divisible by :math:`2^k`, :math:`k` = ``len(channels)``.
        in_channels: input channels.
        dim: token width :math:`D`.
        channels: output channels of each conv block (default ``(32, 64)``: 28 px -> 7x7 tokens).

    Shapes:
        input :math:`(B, C, H, W)`, output :math:`(B, N, D)` with :math:`N = (H/2^k)^2`.
    """

    def __init__(self, image_size: int, in_channels: int, dim: int, channels: Sequence[int] = (32, 64)) -> None:
        super().__init__()
        if not channels:
            raise UserError("The convolutional stem needs at least one block (model.args.stem_channels).")
        stride = 2 ** len(channels)
        if image_size % stride:
            raise UserError(f"The image size {image_size} is not divisible by the stem's stride {stride}.")
        layers: list[nn.Module] = []
        c_in = in_channels
        for c in channels:
            layers += [ConvBNAct(c_in, c, 3), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.proj = nn.Conv2d(c_in, dim, 1)
        self.grid = image_size // stride
        self.num_patches = self.grid * self.grid

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(self.features(x))  # (B, D, H/2^k, W/2^k)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class VisionTransformer(GradCheckpointing, ImageInput, nn.Module):
    r"""ViT: patch (or convolutional-stem) tokens, a class token, learned positions, pre-norm blocks.

    .. math::
        z_0 = [x_\text{cls}; \mathrm{tokens}(x)] + E_\text{pos}, \quad
        z_L = \mathrm{Blocks}(\mathrm{drop}(z_0)), \quad y = W\,\mathrm{LN}(z_L)_0 + b

    Args:
        image_size: input height = width (default 28); the position table has
            :math:`1 + N` rows, so another size is refused.
        patch_size: :math:`P` of the patch embedding (default 4: 7x7 = 49 patches on 28 px).
        in_channels: input channels (default 1).
        num_classes: classes (default 10).
        dim: token width :math:`D` (default 64).
        depth: number of blocks (default 6).
        heads: attention heads (default 4).
        mlp_ratio: feed-forward width over :math:`D` (default 2).
        dropout: dropout on the embeddings, each sub-layer's output and in the feed-forward (default 0.1).
        attn_dropout: dropout on the attention weights (default 0).
        stem: ``"patch"`` (ViT) or ``"conv"`` (the hybrid, see :class:`ConvStem`) (default ``"patch"``).
        stem_channels: the conv stem's channels; its stride :math:`2^k` replaces ``patch_size``
            (default ``(32, 64)``).
        attention: the attention kernel (default ``"sdpa"``; ``need_weights`` uses the written-out one).

    Shapes:
        input :math:`(B, C, H, W)`, output :math:`(B, \text{classes})`;
        :meth:`forward_features` :math:`(B, 1 + N, D)`; :meth:`attention_maps` a list of
        ``depth`` tensors :math:`(B, \text{heads}, 1 + N, 1 + N)`.
    """

    def __init__(
        self,
        image_size: int = 28,
        patch_size: int = 4,
        in_channels: int = 1,
        num_classes: int = 10,
        dim: int = 64,
        depth: int = 6,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        stem: str = "patch",
        stem_channels: Sequence[int] = (32, 64),
        attention: str = "sdpa",
    ) -> None:
        super().__init__()
        if isinstance(image_size, (tuple, list)):
            if image_size[0] != image_size[1]:
                raise UserError(f"ViT takes square images, got {tuple(image_size)}.")
            image_size = int(image_size[0])
        if stem == "patch":
            self.tokens: nn.Module = PatchEmbedding(image_size, patch_size, in_channels, dim)
        elif stem == "conv":
            if patch_size != 2 ** len(stem_channels):
                raise UserError(
                    f"The conv stem's stride is 2^{len(stem_channels)} = {2 ** len(stem_channels)}; "
                    f"set model.args.patch_size to it (got {patch_size})."
                )
            self.tokens = ConvStem(image_size, in_channels, dim, stem_channels)
        else:
            raise UserError(f"model.args.stem must be 'patch' or 'conv', got '{stem}'.")
        if dim % heads:
            raise UserError(f"The width {dim} is not divisible by the {heads} heads.")
        self.in_channels = in_channels
        self.image_size = image_size
        self.example_hw = (image_size, image_size)
        self.num_patches = self.tokens.num_patches
        self.num_features = dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.num_patches, dim))  # learned positions
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                dim,
                heads,
                ff_dim=int(dim * mlp_ratio),
                dropout=dropout,
                attn_dropout=attn_dropout,
                activation="gelu",
                norm_first=True,
                attention=attention,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def embed(self, x: Tensor) -> Tensor:
        """Tokens, the class token in front, plus positions: :math:`z_0` :math:`(B, 1 + N, D)`."""
        if x.dim() != 4 or x.shape[1] != self.in_channels or tuple(x.shape[-2:]) != self.example_hw:
            raise UserError(
                f"This ViT takes images of shape (B, {self.in_channels}, {self.image_size}, {self.image_size}), "
                f"got {tuple(x.shape)}."
            )
        t = self.tokens(x)  # (B, N, D)
        cls = self.cls_token.expand(t.shape[0], -1, -1)  # (B, 1, D)
        return self.drop(torch.cat([cls, t], dim=1) + self.pos_embed)  # (B, 1 + N, D)

    def forward_features(self, x: Tensor) -> Tensor:
        """The normalised output tokens :math:`\\mathrm{LN}(z_L)` :math:`(B, 1 + N, D)`; token 0 is the class token."""
        z = self.embed(x)
        for block in self.blocks:
            z, _ = block(z)
        return self.norm(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x)[:, 0])  # (B, classes)

    @torch.no_grad()
    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """Each block's attention weights :math:`(B, \\text{heads}, 1 + N, 1 + N)`, rows summing to one."""
        z = self.embed(x)
        maps = []
        for block in self.blocks:
            z, w = block(z, need_weights=True)
            maps.append(w["self"])
        return maps

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.head.in_features, num_classes)


VIT_ARGS = (
    "image_size",
    "patch_size",
    "in_channels",
    "num_classes",
    "dim",
    "depth",
    "heads",
    "mlp_ratio",
    "dropout",
    "attn_dropout",
    "attention",
)


@register_model()
@variant(VisionTransformer, VIT_ARGS)
def vit(**kwargs: Any) -> VisionTransformer:
    """ViT with a patch embedding; the defaults (28 px, 4x4 patches, width 64, 6 blocks, 4 heads) suit Fashion-MNIST."""
    return VisionTransformer(stem="patch", **kwargs)


@register_model()
@variant(VisionTransformer, (*VIT_ARGS, "stem_channels"), dropout=0.0)
def vit_hybrid(**kwargs: Any) -> VisionTransformer:
    """The hybrid CNN-Transformer: a conv stem (default 32, 64 channels, stride 4) whose feature-map positions are tokens."""
    return VisionTransformer(stem="conv", **kwargs)
