"""Period styles without a catalogue: every preset (determinism, 8/16-bit, tiles without seams),
the multi-style network (training lowers its loss, codes select styles, tiles agree, printing to
its exemplars' tones), reference transfer, the random and VGG feature extractors, and `archive style-files`."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from flows.cli.main import main as archive
from restoration.checkpoints import load_checkpoint, save_checkpoint
from restoration.data import random_crops
from restoration.engine import EngineConfig
from restoration.factory import create_model
from restoration.styles.evaluate import StyleStats, eval_extractor, off_palette, palette, style_report
from restoration.styles.features import VGGFeatures, make_extractor, tint_curve, tint_distance
from restoration.styles.fields import Placement
from restoration.styles.presets import PRESETS, get_preset
from restoration.styles.runner import TONE_DEFAULT, LearnedStylist, PresetStylist, learned_params, style_code
from restoration.styles.tone import PrintCurve, collection_tones, fit_curve, luma_quantiles
from restoration.styles.training import StyleTrainConfig, StyleTrainer, preset_exemplars
from restoration.styles.transfer import transfer
from tests import samples

PRESET_NAMES = sorted(PRESETS)


def photo(h: int = 96, w: int = 128) -> np.ndarray:
    return np.asarray(samples.clean().resize((w, h)).convert("RGB"))


def as_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def test_the_seven_processes_are_there_with_notes():
    assert {
        "albumen",
        "cyanotype",
        "daguerreotype",
        "platinum",
        "autochrome",
        "kodachrome",
        "faded-1970s",
    } <= set(PRESETS)
    for p in PRESETS.values():
        assert p.note and p.era and p.version.startswith("v") and len(p.digest) == 64


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_is_deterministic_changes_the_image_and_honours_strength(name):
    p, x = get_preset(name), as_tensor(photo())
    a, b = p.apply(x), p.apply(x.clone())
    assert torch.equal(a, b)
    assert (a - x).abs().mean() > 0.02  # it does something visible
    assert torch.equal(p.apply(x, strength=0.0), x)
    half = p.apply(x, strength=0.5)
    assert torch.allclose(half, (x + a) / 2, atol=1e-6)
    assert not torch.equal(p.apply(x, params={"seed": 7}), a)  # the grain is drawn from the seed


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_tiles_join_without_seams(name):
    """A tile styled on its own (told where it lies) equals the same region of the whole."""
    p, x = get_preset(name), as_tensor(photo(150, 170))
    whole = p.apply(x)
    for y0, x0, h, w in [(0, 0, 64, 64), (37, 91, 80, 79), (149, 0, 1, 170)]:
        tile = p.apply(x[..., y0 : y0 + h, x0 : x0 + w], at=Placement(y0, x0, 150, 170))
        assert torch.allclose(tile, whole[..., y0 : y0 + h, x0 : x0 + w], atol=2e-6), (y0, x0)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_keeps_16_bit_precision_and_alpha(name):
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 65535, 200 * 160).reshape(200, 160).astype(np.uint16)
    rgb16 = np.stack([ramp, ramp[::-1], np.roll(ramp, 3000)], axis=2)
    banded = PresetStylist(get_preset(name), band=33).style(rgb16)
    whole = PresetStylist(get_preset(name), band=10_000).style(rgb16)
    assert banded.dtype == np.uint16 and banded.shape == rgb16.shape
    assert np.abs(banded.astype(int) - whole.astype(int)).max() <= 1  # bands join without seams
    assert len(np.unique(banded)) > 4096  # not quantised to 8 bits on the way
    rgba = np.concatenate([photo(), rng.integers(0, 256, (96, 128, 1), dtype=np.uint8)], axis=2)
    out = PresetStylist(get_preset(name)).style(rgba)
    assert out.dtype == np.uint8 and out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])
    grey = PresetStylist(get_preset(name)).style(photo()[..., 0])
    assert grey.shape == (96, 128, 3)  # a style is a colour: grey comes out RGB


def test_unknown_preset_or_parameter_is_refused():
    with pytest.raises(KeyError, match="unknown style 'sepia-ish'"):
        get_preset("sepia-ish")
    with pytest.raises(ValueError, match="no parameter"):
        get_preset("albumen").params({"colour": 1})
    with pytest.raises(ValueError, match="strength"):
        get_preset("albumen").apply(as_tensor(photo()), strength=1.5)


# -- the learned multi-style network -------------------------------------------------------------


@pytest.fixture(scope="module")
def exemplars() -> dict[str, list[np.ndarray]]:
    photos = [
        photo(160, 200),
        np.asarray(samples.clean().rotate(90, expand=True).resize((180, 160)).convert("RGB")),
    ]
    return {
        "albumen": preset_exemplars("albumen", photos),
        "cyanotype": preset_exemplars("cyanotype", photos),
    }


def tiny_trainer(exemplars, steps: int = 30, **overrides) -> StyleTrainer:
    config = StyleTrainConfig(
        architecture="style_net_test",
        arch_config={"base": 8, "blocks": 1},
        steps=steps,
        batch=4,
        crop=48,
        lr=3e-3,
        adv_start=10,
        target_crops=8,
        tint_weight=10.0,
        disc_config={"ndf": 8, "n_layers": 2},
        features={"kind": "random", "seed": 0, "widths": (8, 16, 16)},
        **overrides,
    )
    return StyleTrainer(config, exemplars, [photo(120, 140)], log=lambda _: None)


def test_a_few_training_steps_lower_the_style_loss_and_codes_select_styles(exemplars):
    torch.manual_seed(0)
    trainer = tiny_trainer(exemplars)
    x = as_tensor(photo(48, 48)).repeat(2, 1, 1, 1)
    idx = torch.tensor([0, 1])

    def loss() -> float:
        with torch.no_grad():
            return trainer.losses(x, idx)[0].item()

    before = loss()
    for _ in range(30):
        trainer.train_step()
    assert loss() < 0.7 * before
    with torch.no_grad():
        albumen, cyanotype = trainer.g(x[:1], 0), trainer.g(x[:1], 1)
    blue = lambda t: (t[:, 2] - t[:, 0]).mean().item()  # noqa: E731
    assert blue(cyanotype) > blue(x[:1]) + 0.05  # the cyanotype code turns it blue
    assert blue(albumen) < blue(cyanotype) - 0.1  # the albumen code does not
    onehot = trainer.g(x[:1], torch.tensor([[0.0, 1.0]]))
    assert torch.allclose(onehot, cyanotype)


def test_set_statistics_score_the_exemplars_above_a_rendering_pulled_to_their_average(exemplars):
    """Compared crop by crop, every crop pays for differing from the average exemplar crop, so
    lifted shadows and dimmed highlights can score as well as the exemplars themselves (v2's
    defect). Compared as a set, a batch of exemplar crops is close to its style and the same
    batch pulled towards its mean colour is far from it."""
    trainer = tiny_trainer(exemplars, set_statistics=True)
    idx = torch.zeros(8, dtype=torch.long)
    for seed in range(3):
        crops = random_crops(exemplars["albumen"], 8, 48, np.random.default_rng(100 + seed))
        pulled = torch.lerp(crops, crops.mean((0, 2, 3), keepdim=True), 0.4)
        with torch.no_grad():
            ours, theirs = trainer.statistics_losses(crops, idx), trainer.statistics_losses(pulled, idx)
        assert ours[0] < 0.7 * theirs[0] and ours[1] < 0.7 * theirs[1]  # style (Gram) and colour
    with pytest.raises(ValueError, match="one style per batch"):
        trainer.statistics_losses(crops[:2], torch.tensor([0, 1]))
    trainer.train_step()  # draws one style for the whole batch


def test_learned_style_is_tile_safe():
    net = randomised_net()
    img = photo(150, 170)
    code_styles = ["a", "b"]
    tiled = (
        LearnedStylist(net, code_styles, "b", config=EngineConfig(tile=72, overlap=32))
        .process([img])[0]
        .image
    )
    whole = (
        LearnedStylist(net, code_styles, "b", config=EngineConfig(tile=1024, overlap=0))
        .process([img])[0]
        .image
    )
    assert tiled.shape == img.shape and not np.array_equal(whole, img)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
    with pytest.raises(KeyError, match="no style"):
        style_code(code_styles, "c")
    assert torch.allclose(style_code(code_styles, {"a": 1, "b": 3}), torch.tensor([0.25, 0.75]))


def randomised_net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = create_model("style_net_test")
    for name, p in net.named_parameters():  # an untrained net is the identity: make it do something
        if "film" in name or name.startswith("head"):
            torch.nn.init.normal_(p, std=0.3 if "film" in name else 0.05)
    return net


def test_fit_curve_recovers_a_print_curve():
    tones = luma_quantiles(as_tensor(photo())).numpy()
    for params in [(0.6, 1.2, -0.1), (1.7, 0.8, 0.15), (1.0, 1.0, 0.0)]:
        fitted = fit_curve(tones, PrintCurve(*params).curve(tones))
        assert np.allclose(fitted, params, atol=0.03, rtol=0.03), (fitted, params)


def test_tone_prints_to_the_exemplar_tones_and_tiles_still_agree():
    """An untrained network is the identity: with tone=1 its output takes the target's tonal
    distribution, with tone=0 it is the input, halfway between in between."""
    net = create_model("style_net_test")
    img = photo(150, 170)
    flat = PrintCurve(1.6, 1.2, -0.1, amount=1).apply(as_tensor(img))  # a darker, harder print of it
    net.tones.copy_(luma_quantiles(flat).expand(2, -1))
    gap = lambda out: (luma_quantiles(as_tensor(out)) - net.tones[0]).abs().max().item()  # noqa: E731
    outs = {t: LearnedStylist(net, ["a", "b"], "a", tone=t).process([img])[0].image for t in (0.0, 0.5, 1.0)}
    assert np.abs(outs[0.0].astype(int) - img.astype(int)).max() <= 1
    # (the curve is fitted on luminance and applied per channel: close, not exact)
    assert gap(img) > 0.1 and gap(outs[1.0]) < 0.2 * gap(img) and gap(outs[1.0]) < gap(outs[0.5]) < gap(img)

    net = randomised_net()
    net.tones.copy_(luma_quantiles(flat).expand(2, -1))
    tiled = LearnedStylist(net, ["a", "b"], "b", config=EngineConfig(tile=72, overlap=32), tone=0.75)
    whole = LearnedStylist(net, ["a", "b"], "b", config=EngineConfig(tile=1024, overlap=0), tone=0.75)
    a, b = tiled.process([img])[0].image, whole.process([img])[0].image
    assert tiled.curve == whole.curve and tiled.curve.gamma != 1.0  # one curve per image, from the whole
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    deep = whole.process([img.astype(np.uint16) * 257])[0].image
    assert deep.dtype == np.uint16 and np.abs(deep // 257 - b.astype(int)).max() <= 1


def test_tones_come_from_the_exemplars_and_travel_with_the_weights(exemplars, tmp_path):
    trainer = tiny_trainer(exemplars, steps=1)
    assert torch.allclose(trainer.g.tones[1], collection_tones(exemplars["cyanotype"]))
    assert trainer.g.tones[1].mean() != trainer.g.tones[0].mean()
    save_checkpoint(trainer.g, tmp_path / "m", {"architecture": "style_net_test", "config": {"n_styles": 2}})
    net, _ = load_checkpoint(tmp_path / "m")
    assert torch.equal(net.tones, trainer.g.tones) and learned_params(net, {}) == {"tone": TONE_DEFAULT}
    assert learned_params(net, {"tone": "0.3"}) == {"tone": 0.3}
    for bad, message in [
        ({"tone": "2"}, "between 0 and 1"),
        ({"tone": "dark"}, "a number"),
        ({"gamma": "1"}, "no parameter"),
    ]:
        with pytest.raises(ValueError, match=message):
            learned_params(net, bad)
    older = {k: v for k, v in trainer.g.state_dict().items() if k != "tones"}  # saved before tones existed
    net = create_model("style_net_test")
    net.load_state_dict(older, strict=True)
    assert not net.has_tones() and learned_params(net, {}) == {}  # recipes as before: no tone
    with pytest.raises(ValueError, match="no tones"):
        learned_params(net, {"tone": "0.5"})
    with pytest.raises(ValueError, match="no tones"):
        LearnedStylist(net, ["a", "b"], "a", tone=0.5)


def test_style_report_sees_the_style():
    measure = eval_extractor()
    clean = as_tensor(photo())
    styled = get_preset("cyanotype").apply(clean)
    target = StyleStats.of(measure, get_preset("cyanotype").apply(as_tensor(photo(96, 128)[:, ::-1].copy())))
    report = style_report(measure, target, clean, styled)
    assert report["gram_ratio"] < 0.5 and report["hist_ratio"] < 0.5 and report["luma_ssim"] > 0.6
    assert (
        report["off_palette_before"] > 0.3 and report["off_palette_after"] < 0.01
    )  # a cyanotype has only blues


def test_palette_and_tint_see_a_colour_left_in_a_monochrome_print():
    sepia = get_preset("albumen").apply(as_tensor(photo()))
    exemplar = get_preset("albumen").apply(as_tensor(photo()[:, ::-1].copy()))
    spoiled = sepia.clone()
    spoiled[:, :, 20:50, 30:70] = torch.tensor([0.35, 0.15, 0.4]).view(
        1, 3, 1, 1
    )  # a purple patch, 30 x 40 px
    share = 30 * 40 / (96 * 128)
    grid = palette(exemplar)
    assert off_palette(sepia, grid).item() < 0.01
    assert off_palette(spoiled, grid).item() == pytest.approx(share, abs=0.01)
    curve = tint_curve(exemplar)
    assert tint_distance(sepia, *curve).item() < 0.5 / 255
    # the patch's blue-difference chroma is +0.09 at its tone, the sepia's there about -0.04
    assert tint_distance(spoiled, *curve).item() > 0.1 * share
    assert (
        tint_distance(as_tensor(photo()), *curve).item() > 10 / 255
    )  # the colour photograph is far from sepia


def test_reference_transfer_moves_towards_the_reference():
    content = as_tensor(photo(64, 80))
    reference = get_preset("cyanotype").apply(as_tensor(photo(64, 64)))
    extractor = make_extractor({"kind": "random", "seed": 0, "widths": (16, 32, 32, 32)})
    seen = []
    out = transfer(
        content, reference, extractor, steps=25, size=48, progress=lambda s, loss: seen.append(loss)
    )
    assert out.shape == content.shape and len(seen) == 25 and seen[-1] < seen[0]
    measure = eval_extractor()
    report = style_report(measure, StyleStats.of(measure, reference), content, out)
    assert report["gram_ratio"] < 1.0 and report["hist_ratio"] < 1.0


def test_a_users_vgg19_state_dict_loads_by_torchvision_names(tmp_path):
    from safetensors.torch import save_file

    convs = {
        0: (64, 3),
        2: (64, 64),
        5: (128, 64),
        7: (128, 128),
        10: (256, 128),
        12: (256, 256),
        14: (256, 256),
        16: (256, 256),
        19: (512, 256),
        21: (512, 512),
        23: (512, 512),
        25: (512, 512),
        28: (512, 512),
        30: (512, 512),
        32: (512, 512),
        34: (512, 512),
    }  # torchvision vgg19().features, written out
    state = {}
    for i, (o, c) in convs.items():
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = (
            torch.randn(o, c, 3, 3) * 0.05,
            torch.zeros(o),
        )
    state["classifier.0.weight"], state["classifier.0.bias"] = (
        torch.zeros(4096, 8),
        torch.zeros(4096),
    )  # cut down
    save_file(state, tmp_path / "vgg19.safetensors")
    extractor = make_extractor({"kind": "vgg19", "weights": str(tmp_path / "vgg19.safetensors")})
    feats = extractor(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512]
    assert torch.equal(extractor.features["19"].weight, state["features.19.weight"])
    del state["features.19.weight"]
    with pytest.raises(ValueError, match="missing"):
        VGGFeatures().load_user_weights(state)


# -- archive style-files ----------------------------------------------------------------------------


def test_style_files_keeps_names_sizes_and_bit_depth(tmp_path, capsys):
    inbox = tmp_path / "in"
    inbox.mkdir()
    Image.fromarray(photo()).save(inbox / "print.jpg", quality=92)
    rgb16 = np.asarray(photo(), dtype=np.uint16) * 257
    tifffile.imwrite(inbox / "scan16.tif", rgb16, photometric="rgb")
    Image.fromarray(photo()[..., 0]).save(inbox / "grey.png")
    (inbox / "broken.png").write_bytes(b"\x89PNG not really")
    inputs = [str(inbox / n) for n in ("print.jpg", "scan16.tif", "grey.png", "broken.png")]
    code = archive(
        ["style-files", *inputs, "--style", "platinum", "--out", str(tmp_path / "out"), "--strength", "0.8"]
    )
    assert code == 1  # the broken one failed, alone
    err = capsys.readouterr().err
    assert "failed" in err and "broken.png" in err and err.count("failed") == 1
    jpg = Image.open(tmp_path / "out" / "print.jpg")
    assert jpg.format == "JPEG" and jpg.size == (128, 96)
    styled16 = tifffile.imread(tmp_path / "out" / "scan16.tif")
    assert styled16.dtype == np.uint16 and styled16.shape == rgb16.shape
    expected = PresetStylist(get_preset("platinum"), 0.8).style(rgb16)
    assert np.array_equal(styled16, expected)
    grey = Image.open(tmp_path / "out" / "grey.png")
    assert grey.mode == "RGB" and grey.size == (128, 96)


def read_png16(data: bytes) -> np.ndarray:
    """The samples of an unfiltered 16-bit RGB PNG (Pillow reads such files as 8-bit)."""
    import struct
    import zlib

    pos, idat, size = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
            assert body[8:10] == bytes([16, 2])  # 16-bit, RGB
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    w, h = size
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * 6)
    assert not rows[:, 0].any()  # no row filters
    return rows[:, 1:].copy().view(">u2").reshape(h, w, 3).astype(np.uint16)


def test_style_files_writes_a_grey_16_bit_png_as_16_bit_colour(tmp_path):
    grey16 = np.asarray(photo()[..., 1], dtype=np.uint16) * 257 + 7
    Image.fromarray(grey16).save(tmp_path / "grey16.png", dpi=(600, 600))
    assert (
        archive(
            [
                "style-files",
                str(tmp_path / "grey16.png"),
                "--style",
                "cyanotype",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    data = (tmp_path / "out" / "grey16.png").read_bytes()
    px = read_png16(data)
    expected = PresetStylist(get_preset("cyanotype")).style(grey16)
    assert np.array_equal(px, expected) and len(np.unique(px)) > 256
    with Image.open(tmp_path / "out" / "grey16.png") as img:  # a valid PNG to other readers too
        assert img.size == (128, 96) and round(img.info["dpi"][0]) == 600
        assert np.array_equal(np.asarray(img.convert("RGB")), (expected >> 8).astype(np.uint8))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--style", "sepia-ish"], "unknown style 'sepia-ish'"),
        (["--style", "albumen", "--param", "colour=3"], "no parameter"),
        (["--style", "albumen", "--param", "novalue"], "is not key=value"),
        (["--style", "learned:period-styles"], "learned:NAME@VERSION"),
        (["--style", "albumen", "--strength", "2"], "strength"),
    ],
)
def test_style_files_refuses_bad_arguments_in_one_line(tmp_path, capsys, args, message):
    Image.fromarray(photo()).save(tmp_path / "a.png")
    code = archive(
        [
            "--db",
            f"sqlite:///{tmp_path}/c.db",
            "style-files",
            str(tmp_path / "a.png"),
            "--out",
            str(tmp_path / "out"),
            *args,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and message in err and len(err.splitlines()) == 1 and err.startswith("error:")
    assert not (tmp_path / "out").exists()


def test_style_transfer_cli_writes_the_result(tmp_path):
    Image.fromarray(photo()).save(tmp_path / "content.png")
    Image.fromarray(preset_exemplars("cyanotype", [photo(80, 80)])[0]).save(tmp_path / "ref.png")
    code = archive(
        [
            "style-transfer",
            str(tmp_path / "content.png"),
            "--reference",
            str(tmp_path / "ref.png"),
            "--out",
            str(tmp_path / "out.png"),
            "--steps",
            "5",
            "--size",
            "64",
        ]
    )
    assert code == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (96, 128, 3) and not np.array_equal(out, photo())


def test_train_style_cli_makes_a_registrable_checkpoint_used_by_name(tmp_path, capsys):
    """`archive train style` from a folder and a preset set, then register, promote and use it."""
    import json

    folder = tmp_path / "cyanotypes"
    folder.mkdir()
    for i, img in enumerate(preset_exemplars("cyanotype", [photo(120, 160), photo(100, 100)])):
        Image.fromarray(img).save(folder / f"plate{i}.png")
    (folder / "notes.txt").write_text("not an image")
    db = ["--db", f"sqlite:///{tmp_path}/c.db", "--output", str(tmp_path / "store")]
    code = archive(
        [
            *db,
            "train",
            "style",
            "--name",
            "tiny-styles",
            "--out",
            str(tmp_path / "tiny" / "v1"),
            "--steps",
            "2",
            "--crop",
            "48",
            "--exemplars",
            str(folder),
            "--exemplars",
            "name=brown preset=albumen",
        ]
    )
    assert code == 0, capsys.readouterr().err
    card = json.loads((tmp_path / "tiny" / "v1" / "card.json").read_text())
    assert (
        card["task"] == "style"
        and card["styles"] == ["cyanotypes", "brown"]
        and card["config"]["n_styles"] == 2
    )
    assert (
        card["data"]["exemplars"]["cyanotypes"]["images"] == 2
        and len(card["data"]["exemplars"]["brown"]["digest"]) == 64
    )
    assert (
        set(card["per_style"]["brown"]) >= {"gram_ratio", "hist_ratio", "off_palette_after", "luma_ssim"}
        and card["training"]["steps_done"] == 2
    )
    assert card["training"]["augment"] is True  # content crops zoomed and recoloured unless --no-augment
    assert (
        card["training"]["set_statistics"] is True and "page" not in card["data"]["content"]
    )  # photographs only
    assert archive([*db, "models", "register", str(tmp_path / "tiny" / "v1"), "--promote"]) == 0
    Image.fromarray(photo()).save(tmp_path / "in.png")
    capsys.readouterr()
    code = archive(
        [
            *db,
            "style-files",
            str(tmp_path / "in.png"),
            "--style",
            "learned:tiny-styles@v1",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 1 and "has styles ['cyanotypes', 'brown']: name one" in capsys.readouterr().err
    assert (
        archive(
            [
                *db,
                "style-files",
                str(tmp_path / "in.png"),
                "--style",
                "learned:tiny-styles@production:brown",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    assert np.asarray(Image.open(tmp_path / "o" / "in.png")).shape == (96, 128, 3)
    capsys.readouterr()
    assert (
        archive(
            [
                *db,
                "style-files",
                str(tmp_path / "in.png"),
                "--style",
                "learned:tiny-styles@v1:brown",
                "--param",
                "tone=0",
                "--out",
                str(tmp_path / "flat"),
            ]
        )
        == 0
    )
    assert (
        "tiny-styles@v1:brown at strength" in capsys.readouterr().err
    )  # tone 0: not printed to the exemplars' tones
    assert not np.array_equal(
        np.asarray(Image.open(tmp_path / "flat" / "in.png")),
        np.asarray(Image.open(tmp_path / "o" / "in.png")),
    )
    code = archive(
        [
            *db,
            "style-files",
            str(tmp_path / "in.png"),
            "--style",
            "learned:tiny-styles@v1:brown",
            "--param",
            "tone=7",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and "tone must be between 0 and 1" in err and len(err.splitlines()) == 1
    code = archive(
        [
            *db,
            "train",
            "style",
            "--name",
            "x",
            "--out",
            str(tmp_path / "x"),
            "--exemplars",
            "preset=albumen nope=1",
        ]
    )
    assert code != 0 and "unknown term(s) ['nope']" in capsys.readouterr().err
