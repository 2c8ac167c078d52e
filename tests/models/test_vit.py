"""ViT and the hybrid CNN-Transformer: tokens, class token, positions, attention maps, and viz attention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archzoo.cli import main
from archzoo.errors import UserError
from archzoo.models.vit import ConvStem, PatchEmbedding, VisionTransformer
from archzoo.registry import create_model, list_models


def _tiny(**kw: object) -> VisionTransformer:
    torch.manual_seed(0)
    args = {"dim": 16, "depth": 2, "heads": 2, "dropout": 0.0}
    return create_model("vit", **{**args, **kw}).eval()


def test_shapes_and_patch_count() -> None:
    m = _tiny()
    x = torch.randn(3, 1, 28, 28)
    assert m(x).shape == (3, 10)
    assert m.num_patches == 49 and m.forward_features(x).shape == (3, 50, 16)
    assert m.pos_embed.shape == (1, 50, 16)  # one learned position per patch and one for the class token
    m7 = _tiny(patch_size=7, in_channels=3, image_size=28)
    assert m7.num_patches == 16 and m7.forward_features(torch.randn(2, 3, 28, 28)).shape == (2, 17, 16)
    # The patch embedding is a linear map of each 4x4 patch: token (i, j) sees pixels [4i:4i+4, 4j:4j+4].
    pe = PatchEmbedding(28, 4, 1, 16)
    t = pe(x)  # (3, 49, 16)
    patch = x[:, :, 8:12, 20:24].flatten(1)  # row 2, column 5
    want = patch @ pe.proj.weight.flatten(1).T + pe.proj.bias
    torch.testing.assert_close(t[:, 2 * 7 + 5], want, atol=1e-5, rtol=1e-5)


def test_the_head_reads_the_class_token() -> None:
    m = _tiny()
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(m(x), m.head(m.forward_features(x)[:, 0]))
    before = m(x)
    with torch.no_grad():
        m.cls_token.add_(torch.randn_like(m.cls_token))  # (a constant shift would vanish in the LayerNorms)
    assert not torch.allclose(before, m(x), atol=1e-4)  # the class token is an input the output depends on


def test_wrong_image_size_and_bad_arguments_are_one_sentence_errors() -> None:
    m = _tiny()
    with pytest.raises(UserError, match=r"takes images of shape \(B, 1, 28, 28\), got \(2, 1, 32, 32\)"):
        m(torch.randn(2, 1, 32, 32))
    with pytest.raises(UserError, match="must divide the image size"):
        create_model("vit", patch_size=5)
    with pytest.raises(UserError, match="not divisible by the 3 heads"):
        create_model("vit", dim=16, heads=3)
    with pytest.raises(UserError, match="stride is 2\\^2 = 4"):
        create_model("vit_hybrid", patch_size=7)


def test_attention_maps_are_distributions_and_sdpa_equals_manual() -> None:
    m = _tiny()
    x = torch.randn(2, 1, 28, 28)
    maps = m.attention_maps(x)
    assert len(maps) == 2 and maps[0].shape == (2, 2, 50, 50)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(2, 2, 50))
    manual = _tiny(attention="manual")
    manual.load_state_dict(m.state_dict())
    torch.testing.assert_close(manual(x), m(x), atol=1e-5, rtol=1e-5)


def test_hybrid_tokens_are_the_conv_stems_feature_map_positions() -> None:
    torch.manual_seed(0)
    m = create_model("vit_hybrid", dim=16, depth=1, heads=2).eval()
    assert isinstance(m.tokens, ConvStem) and m.tokens.grid == 7 and m.num_patches == 49
    x = torch.randn(2, 1, 28, 28)
    fmap = m.tokens.proj(m.tokens.features(x))  # (2, 16, 7, 7)
    tokens = m.tokens(x)  # (2, 49, 16)
    torch.testing.assert_close(tokens[:, 3 * 7 + 4], fmap[:, :, 3, 4])
    assert m(x).shape == (2, 10)
    wide = create_model("vit_hybrid", stem_channels=(8, 8, 8), patch_size=8, image_size=32, dim=16, heads=2)
    assert wide.num_patches == 16  # three pools: 32 px -> 4x4 tokens


def test_registry_builds_both_and_gradients_reach_the_embeddings() -> None:
    assert {"vit", "vit_hybrid"} <= set(list_models())
    for name in ("vit", "vit_hybrid"):
        m = create_model(name, dim=16, depth=1, heads=2)
        m(*m.example_input(2)).sum().backward()
        assert m.cls_token.grad is not None and m.pos_embed.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    run = tmp_path_factory.mktemp("vit") / "run"
    args = ["model.args.dim=16", "model.args.depth=2", "model.args.heads=2", "data.args.limit=256"]
    rc = main(["train", "fashion-vit", *args, "train.epochs=1", "train.max_steps=4", "train.threads=1", "log.progress=none",
               "log.plots=false", "--run-dir", str(run)])  # fmt: skip
    assert rc == 0
    return run


def test_viz_attention_writes_one_png_per_layer_with_a_panel_per_head(
    vit_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    out = tmp_path / "att"
    assert main(["viz", "attention", str(vit_run), "3", "--out", str(out)]) == 0
    written = [Path(p) for p in capsys.readouterr().out.split()]
    assert [p.name for p in written] == ["test3_Trouser_layer0.png", "test3_Trouser_layer1.png"]
    for p in written:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 2 * im.size[1]  # image and two heads side by side
            assert np.asarray(im).std() > 10
    png = tmp_path / "shirt.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8), mode="L").save(png)
    assert main(["viz", "attention", str(vit_run), str(png), "--out", str(out)]) == 0
    assert [Path(p).name for p in capsys.readouterr().out.split()] == ["shirt_layer0.png", "shirt_layer1.png"]
    assert main(["viz", "attention", str(vit_run), "999999"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the test split holds 256 images" in err[0]
