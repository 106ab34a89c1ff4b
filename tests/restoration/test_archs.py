"""Every registered architecture: forward shapes, state-dict round trips, the registry itself,
and strict loading of checkpoints laid out like Real-ESRGAN's published ones."""

from __future__ import annotations

import pytest
import torch

from restoration.engine import takes_mask
from restoration.factory import create_model, list_models
from restoration.registry import register_model

TEST_VARIANTS = [name for name in list_models() if name.endswith("_test")]


def test_every_architecture_has_a_test_variant():
    full = {name for name in list_models() if not name.endswith("_test")}
    assert full == {
        "unet_restorer",
        "patchgan",
        "rrdbnet",
        "srvgg_compact",
        "style_net",
        "damage_detector",
        "gated_inpainter",
        "restore_pipeline",
        "toned_restorer",
        "tone_net",
    }
    assert {name.removesuffix("_test") for name in TEST_VARIANTS} == full


def _forward(model, x):
    with torch.no_grad():
        if takes_mask(model) and "Inpainter" in type(model).__name__:  # the inpainter needs its holes
            holes = torch.rand(x[:, :1].shape, generator=torch.Generator().manual_seed(0)) > 0.8
            return model.eval()(x, holes.float())
        return model.eval()(x)


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_state_dict_round_trip(name):
    torch.manual_seed(0)
    a, b = create_model(name), create_model(name)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.rand(2, 3, 32, 40)
    out_a, out_b = _forward(a, x), _forward(b, x)
    for ta, tb in zip(
        out_a if isinstance(out_a, tuple) else [out_a],
        out_b if isinstance(out_b, tuple) else [out_b],
        strict=False,
    ):
        assert torch.equal(ta, tb)


@pytest.mark.parametrize("h, w", [(32, 32), (37, 53), (8, 8)])
def test_unet_shapes_on_any_size_and_identity_at_start(h, w):
    model = create_model("unet_restorer_test")
    x = torch.rand(2, 3, h, w)
    restored, mask = _forward(model, x)
    assert restored.shape == x.shape and mask.shape == (2, 1, h, w)
    assert torch.equal(restored, x)  # the image head starts at zero: an untrained model changes nothing


def test_default_unet_size():
    params = sum(p.numel() for p in create_model("unet_restorer").parameters())
    assert 1e6 <= params <= 3e6


def test_patchgan_scores_patches_with_spectral_norm():
    d = create_model("patchgan_test")
    logits = _forward(d, torch.rand(2, 3, 64, 64))
    assert logits.shape[:2] == (2, 1) and logits.shape[-1] > 1
    assert any(hasattr(m, "parametrizations") for m in d.modules())


@pytest.mark.parametrize("scale, h, w", [(4, 16, 16), (2, 16, 16), (1, 16, 16), (2, 15, 17), (1, 13, 18)])
def test_rrdbnet_scales_any_size(scale, h, w):
    """x2 and x1 pixel-unshuffle their input, so an odd-sized scan is padded to the factor and the
    output cut back to exactly ``scale`` times the input."""
    out = _forward(create_model("rrdbnet_test", scale=scale), torch.rand(1, 3, h, w))
    assert out.shape == (1, 3, h * scale, w * scale)


def test_srvgg_upscales():
    assert _forward(create_model("srvgg_compact_test"), torch.rand(1, 3, 12, 10)).shape == (1, 3, 48, 40)


def test_registry_refuses_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        register_model("unet_restorer")(torch.nn.Identity)
    with pytest.raises(KeyError, match="unknown model 'nope'.*unet_restorer"):
        create_model("nope")


# -- Real-ESRGAN's published layouts, written out from the release notes, not from our code ---


def realesrgan_x4plus_layout(num_feat=64, num_block=23, grow=32):
    shapes = {"conv_first": (num_feat, 3)}
    for b in range(num_block):
        for r in (1, 2, 3):
            for k in range(1, 6):
                cin = num_feat + (k - 1) * grow
                shapes[f"body.{b}.rdb{r}.conv{k}"] = (grow if k < 5 else num_feat, cin)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes[name] = (num_feat, num_feat)
    shapes["conv_last"] = (3, num_feat)
    state = {}
    for name, (cout, cin) in shapes.items():
        state[f"{name}.weight"] = torch.randn(cout, cin, 3, 3) * 0.01
        state[f"{name}.bias"] = torch.zeros(cout)
    return {"params_ema": state}


def realesr_general_x4v3_layout(num_feat=64, num_conv=32, upscale=4):
    state = {
        "body.0.weight": torch.randn(num_feat, 3, 3, 3),
        "body.0.bias": torch.zeros(num_feat),
        "body.1.weight": torch.full((num_feat,), 0.25),
    }
    for i in range(num_conv):
        conv, act = 2 + 2 * i, 3 + 2 * i
        state[f"body.{conv}.weight"] = torch.randn(num_feat, num_feat, 3, 3) * 0.01
        state[f"body.{conv}.bias"] = torch.zeros(num_feat)
        state[f"body.{act}.weight"] = torch.full((num_feat,), 0.25)
    last = 2 + 2 * num_conv
    state[f"body.{last}.weight"] = torch.randn(3 * upscale * upscale, num_feat, 3, 3) * 0.01
    state[f"body.{last}.bias"] = torch.zeros(3 * upscale * upscale)
    return {"params": state}


def test_realesrgan_x4plus_checkpoint_loads_strictly():
    model = create_model("rrdbnet")
    missing_unexpected = model.load_state_dict(realesrgan_x4plus_layout()["params_ema"], strict=True)
    assert not missing_unexpected.missing_keys and not missing_unexpected.unexpected_keys
    assert _forward(model, torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_realesr_general_x4v3_checkpoint_loads_strictly():
    model = create_model("srvgg_compact", num_conv=32)
    model.load_state_dict(realesr_general_x4v3_layout()["params"], strict=True)
    assert _forward(model, torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_padded_detector_sees_a_mirror_not_a_black_frame():
    """With ``pad``, a picture's edge is seen as the picture continued (mirrored), not against the
    convolutions' zero padding: the same weights give the plain detector's logits on the mirrored
    picture, which differ at the edge; any size still works (a small one with a narrower mirror),
    and a pad off the grid is refused."""
    torch.manual_seed(0)
    plain = create_model("damage_detector_test").eval()  # alignment 4
    padded = create_model("damage_detector_test", pad=8).eval()
    padded.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 40, 44)
    with torch.no_grad():
        a, b = plain(x), padded(x)
        # the mirror is what the padded one sees: the plain one on the mirrored picture, cropped
        mirrored = plain(torch.nn.functional.pad(x, (8, 8, 8, 8), mode="reflect"))[..., 8:48, 8:52]
    assert b.shape == a.shape == (1, 1, 40, 44)
    assert torch.allclose(b, mirrored, atol=1e-6)
    assert (a - b)[..., :2, :].abs().max() > 1e-3  # the edge differs
    for h, w in ((5, 7), (9, 30), (1, 1)):
        with torch.no_grad():
            assert padded(torch.rand(2, 3, h, w)).shape == (2, 1, h, w)
    with pytest.raises(ValueError, match="multiple of its alignment"):
        create_model("damage_detector_test", pad=6)
