"""The tone stage (issue 20): fitted per image on a preview, applied per pixel, so tiles agree with
the whole; ``off`` and ``strength=0`` change nothing, bit for bit; fading is undone; a toned
monochrome print keeps its hue; a clean photograph is left alone; bad parameters are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restoration import tone_stage
from restoration.data import bundled_images
from restoration.degrade.tone import apply_fading, apply_sepia, apply_yellowing, luminance
from restoration.engine import EngineConfig, Restorer
from restoration.factory import create_model
from restoration.metrics import psnr
from restoration.recipe import restore_params
from restoration.styles.tone import preview
from restoration.tone_runner import TonedRun

TILED = EngineConfig(tile=64, overlap=16, device="cpu")
WHOLE = EngineConfig(tile=2048, device="cpu")


@pytest.fixture(scope="module")
def toned():
    torch.manual_seed(0)
    model = create_model("toned_restorer_test").eval()
    torch.nn.init.normal_(model.restorer.image_head.weight, std=0.05)  # visibly changes the image
    return model


def faded_photo(size: int = 160) -> np.ndarray:
    """coffee, faded (lifted blacks, lost contrast), as uint8."""
    x = preview(bundled_images(("coffee",))["coffee"], size)
    faded = apply_fading(x, {"lift": 0.18, "contrast": 0.65})
    return (faded[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def as_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]


@pytest.mark.parametrize("tone", ["auto", "neutral"])
def test_tiled_equals_whole_and_the_fit_is_in_the_result(toned, tone):
    image = faded_photo()
    tiled = TonedRun(toned, TILED, tone).process([image])[0]
    whole = TonedRun(toned, WHOLE, tone).process([image])[0]
    assert np.abs(tiled.image.astype(int) - whole.image.astype(int)).max() <= 1
    fit = tiled.derived["tone"]
    assert fit == whole.derived["tone"] and fit["mode"] == tone
    assert fit["black"] > 0.05 and fit["white"] <= 1.0  # the lifted blacks were found


def test_off_leaves_tone_untouched_bit_for_bit(toned):
    image = faded_photo()
    TonedRun(toned, TILED, "neutral").process([image])  # a correction left in the model is not reused
    off = TonedRun(toned, TILED, "off").process([image])[0]
    plain = Restorer(toned.restorer, TILED).restore([image])[0]
    assert np.array_equal(off.image, plain.image) and np.array_equal(off.mask, plain.mask)
    assert off.derived is None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_strength_zero_returns_the_input_bit_for_bit(toned, dtype):
    rng = np.random.default_rng(1)
    top = np.iinfo(dtype).max
    for shape in [(40, 56, 3), (40, 56), (40, 56, 4)]:
        image = (rng.random(shape) * top).astype(dtype)
        out = TonedRun(toned, TILED, "auto", strength=0.0).process([image])[0]
        assert out.image.dtype == dtype and np.array_equal(out.image, image)


def test_strength_blends_the_restoration_over_its_input(toned):
    image = faded_photo()
    full = TonedRun(toned, TILED, "auto", 1.0).process([image])[0].image.astype(float)
    half = TonedRun(toned, TILED, "auto", 0.5).process([image])[0].image.astype(float)
    assert np.abs(half - (image + full) / 2).max() <= 1.0


def test_fading_is_undone_and_a_clean_photograph_left_alone():
    clean = preview(bundled_images(("coffee",))["coffee"], 256).clamp(0, 1)
    faded = apply_fading(clean, {"lift": 0.18, "contrast": 0.65})
    for mode in ("auto", "neutral"):
        fixed = tone_stage.apply(faded, tone_stage.fit(faded, mode).as_tensor())
        assert psnr(fixed, clean) > psnr(faded, clean) + 5  # dB
    fit = tone_stage.fit(clean, "auto")
    assert fit.black == 0.0 and fit.white == 1.0
    assert torch.equal(tone_stage.apply(clean, fit.as_tensor()), clean)


def chroma(x: torch.Tensor) -> float:
    return float((x - luminance(x)).abs().mean())


def test_a_toned_monochrome_print_keeps_its_hue_under_auto_and_neutral_makes_it_grey():
    grey = luminance(preview(bundled_images(("camera",))["camera"], 256)).expand(-1, 3, -1, -1)
    toned = apply_fading(apply_sepia(grey, {"strength": 1.0}), {"lift": 0.15, "contrast": 0.7})
    auto = tone_stage.apply(toned, tone_stage.fit(toned, "auto").as_tensor())
    assert abs(chroma(auto) / chroma(toned) - 1) < 0.10  # hue and tint kept
    assert luminance(auto).std() > 1.2 * luminance(toned).std()  # while the fading is undone
    neutral = tone_stage.apply(toned, tone_stage.fit(toned, "neutral").as_tensor())
    assert chroma(neutral) < 0.1 * chroma(toned)
    plain = grey[:, :1]  # a grey image stays exactly grey
    fitted = tone_stage.apply(
        plain.expand(-1, 3, -1, -1), tone_stage.fit(plain.expand(-1, 3, -1, -1), "neutral").as_tensor()
    )
    assert torch.equal(fitted[:, 0], fitted[:, 1]) and torch.equal(fitted[:, 1], fitted[:, 2])


def test_neutral_removes_a_yellow_cast_auto_keeps_it():
    clean = preview(bundled_images(("coffee",))["coffee"], 256).clamp(0, 1)
    yellowed = apply_yellowing(clean, {"gains": [1.0, 0.92, 0.7], "tint": 0.04})
    neutral = tone_stage.apply(yellowed, tone_stage.fit(yellowed, "neutral").as_tensor())
    assert psnr(neutral, clean) > psnr(yellowed, clean) + 3
    auto = tone_stage.apply(yellowed, tone_stage.fit(yellowed, "auto").as_tensor())
    blue = lambda x: float(x[:, 2].mean() - x[:, 0].mean())  # noqa: E731
    assert abs(blue(auto) - blue(yellowed)) < 0.01


def test_grey_and_16_bit_images_keep_their_mode(toned):
    rng = np.random.default_rng(2)
    grey16 = (rng.random((48, 64)) * 30000 + 20000).astype(np.uint16)
    out = TonedRun(toned, TILED, "neutral").process([grey16])[0]
    assert out.image.shape == grey16.shape and out.image.dtype == np.uint16


def test_recipe_parameters_are_checked_typed_and_defaulted():
    assert restore_params("toned_restorer", {}) == {"tone": "auto", "strength": 1.0}
    assert restore_params("toned_restorer", {"tone": "neutral", "strength": "0.25"}) == {
        "tone": "neutral",
        "strength": 0.25,
    }
    # a model from before the stage: its recipes keep their hashes; strength alone is recorded
    assert restore_params("unet_restorer", {}) == {} == restore_params("unet_restorer", {"strength": "1"})
    assert restore_params("unet_restorer", {"strength": "0.5", "tone": "off"}) == {"strength": 0.5}
    for arch, params, message in [
        ("toned_restorer", {"tone": "sepia"}, "tone must be one of auto, neutral, off"),
        ("toned_restorer", {"strength": "1.5"}, "strength must be between 0 and 1"),
        ("toned_restorer", {"strength": "nan"}, "strength must be between 0 and 1"),
        ("toned_restorer", {"strength": "lots"}, "strength must be a number"),
        ("toned_restorer", {"colour": "1"}, "no parameter(s) ['colour']"),
        ("unet_restorer", {"tone": "auto"}, "has no tone stage"),
    ]:
        with pytest.raises(
            ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
        ):
            restore_params(arch, params)
    with pytest.raises(ValueError, match="no tone stage"):
        TonedRun(create_model("unet_restorer_test"), TILED, "auto")


def test_the_learned_estimator_trains_resumes_and_runs_tiled_like_whole(tmp_path):
    from restoration.tone_training import ToneTrainConfig, train

    images = bundled_images(("camera", "chelsea"))
    config = ToneTrainConfig(steps=4, batch=2, size=48, width=4, hidden=8, save_every=2)
    state = tmp_path / "tone.state"
    net, _ = train(images, config, state, log=lambda s: None)
    assert torch.load(state, weights_only=True)["step"] == 4
    again, _ = train(images, config, state, log=lambda s: None)  # resumed at its end: nothing to do
    assert all(
        torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match="another configuration"):
        train(
            images, ToneTrainConfig(steps=5, batch=2, size=48, width=4, hidden=8), state, log=lambda s: None
        )
    model = create_model(
        "toned_restorer_test", tone={"estimator": "learned", "net": {"width": 4, "hidden": 8}}
    ).eval()
    model.estimator.load_state_dict(net.state_dict())
    image = faded_photo()
    tiled = TonedRun(model, TILED, "neutral").process([image])[0]
    whole = TonedRun(model, WHOLE, "neutral").process([image])[0]
    assert np.abs(tiled.image.astype(int) - whole.image.astype(int)).max() <= 1
    assert tiled.derived["tone"]["estimator"] == "learned" and tiled.derived == whole.derived


def test_a_learned_estimate_is_kept_off_light_subjects():
    stretch = tone_stage.ToneFit(black=0.4, white=0.9, mode="auto", estimator="learned")
    pale = torch.full((1, 3, 32, 32), 0.7) + 0.2 * torch.rand(1, 3, 32, 32)  # darkest tones at 0.7
    assert (tone_stage.guarded(stretch, pale).black, tone_stage.guarded(stretch, pale).white) == (0.0, 1.0)
    dark = torch.rand(1, 3, 32, 32) * 0.6 + 0.2  # darkest at 0.2: faded, not light
    assert tone_stage.guarded(stretch, dark) == stretch


def test_neutral_blends_the_learned_estimate_with_the_classical_one_and_auto_does_not():
    torch.manual_seed(1)
    spec = {"estimator": "learned", "net": {"width": 4, "hidden": 8}}
    alone = create_model("toned_restorer_test", tone=spec).eval()
    blended = create_model("toned_restorer_test", tone=spec | {"neutral_blend": 0.5}).eval()
    blended.load_state_dict(alone.state_dict())
    small = as_tensor(faded_photo(96))
    learned, classical = alone.fit(small, "neutral"), tone_stage.fit(small, "neutral")
    mixed = blended.fit(small, "neutral")
    assert mixed.estimator == "learned+classical" and mixed.mode == "neutral"
    expected = (learned.as_tensor() + classical.as_tensor()) / 2
    assert torch.allclose(mixed.as_tensor(), expected, atol=1e-6)
    assert not torch.allclose(mixed.as_tensor(), learned.as_tensor(), atol=1e-3)  # the blend did something
    assert blended.fit(small, "auto") == alone.fit(small, "auto")  # auto keeps the learned estimate
    with pytest.raises(ValueError, match="neutral_blend"):
        create_model("toned_restorer_test", tone=spec | {"neutral_blend": 1.5})
