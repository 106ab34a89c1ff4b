"""The staged restorer: detect -> inpaint -> denoise as one checkpoint whose card vouches for every
stage; tiles that agree with the whole image at the inpainter's overlap; a curator's own mask;
and the training that makes the stages (float32 losses, worker-built batches, resumable)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from restoration import losses
from restoration.checkpoints import ChecksumError, load_checkpoint, save_checkpoint, sha256_file
from restoration.data import batch_loader, step_batch
from restoration.degrade import DegradationConfig
from restoration.engine import EngineConfig, Restorer
from restoration.factory import create_model
from restoration.stage_training import StageConfig, StageTrainer, batch_maker, stage_of
from restoration.stages import assemble

TINY = {"detect": "damage_detector_test", "inpaint": "gated_inpainter_test", "denoise": "unet_restorer_test"}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[::2, ::2][:200, :232])


@pytest.fixture()
def pipeline_dir(tmp_path):
    torch.manual_seed(0)
    dirs = {}
    for name, arch in TINY.items():
        model = create_model(arch)
        with torch.no_grad():  # an untrained detector marks nothing; make it mark bright pixels
            if name == "detect":
                model.head.bias.fill_(0.0)
        dirs[name] = tmp_path / name
        save_checkpoint(
            model, dirs[name], {"architecture": arch, "config": {}, "name": f"tiny-{name}", "version": "t1"}
        )
    card = assemble(dirs, tmp_path / "pipeline", {"name": "restore-pipeline", "version": "t1"})
    return tmp_path / "pipeline", card


def test_pipeline_card_lists_every_stage_and_loading_rebuilds_it(pipeline_dir):
    directory, card = pipeline_dir
    assert card["architecture"] == "restore_pipeline" and set(card["stages"]) == {
        "detect",
        "inpaint",
        "denoise",
    }
    for name, arch in TINY.items():
        stage = card["stages"][name]
        assert stage["architecture"] == arch and len(stage["tensors_sha256"]) == 64
        assert stage["from"]["weights_sha256"] == sha256_file(directory.parent / name / "model.safetensors")
    model, _ = load_checkpoint(directory)
    x = torch.rand(1, 3, 40, 48)
    restored, logits = model(x)
    assert restored.shape == x.shape and logits.shape == (1, 1, 40, 48)


def test_a_stage_is_taken_from_an_assembled_pipeline_with_its_provenance(pipeline_dir, tmp_path):
    path, card = pipeline_dir
    other = create_model("damage_detector_test")
    save_checkpoint(
        other, tmp_path / "d2", {"architecture": "damage_detector_test", "config": {}, "version": "t2"}
    )
    mixed = assemble(
        {"detect": tmp_path / "d2", "inpaint": path, "denoise": path}, tmp_path / "mixed", {"version": "t3"}
    )
    model, _ = load_checkpoint(tmp_path / "mixed")
    original, _ = load_checkpoint(path)
    for k, v in original.inpaint.state_dict().items():
        assert torch.equal(v, model.inpaint.state_dict()[k]), k
    assert not torch.equal(model.detect.head.bias, original.detect.head.bias)
    inpaint = mixed["stages"]["inpaint"]
    assert inpaint["tensors_sha256"] == card["stages"]["inpaint"]["tensors_sha256"]
    assert inpaint["from"]["pipeline_weights_sha256"] == card["weights_sha256"]
    assert inpaint["from"]["weights_sha256"] == card["stages"]["inpaint"]["from"]["weights_sha256"]
    with pytest.raises(ValueError, match="no denoise stage"):
        partial = assemble({"detect": path, "inpaint": path}, tmp_path / "p2", {"version": "t4"})
        assemble({"detect": path, "inpaint": path, "denoise": tmp_path / "p2"}, tmp_path / "p3", {})
    assert partial["stages"]["detect"]["tensors_sha256"] == card["stages"]["detect"]["tensors_sha256"]


def test_a_tampered_stage_is_refused_even_with_a_matching_file_digest(pipeline_dir):
    directory, card = pipeline_dir
    weights = directory / "model.safetensors"
    state = load_file(weights)
    state["inpaint.head.bias"] = state["inpaint.head.bias"] + 0.01
    save_file(state, weights, metadata={"architecture": "restore_pipeline"})
    card["weights_sha256"] = sha256_file(weights)  # someone re-signed the file, not the stage
    (directory / "card.json").write_text(json.dumps(card))
    with pytest.raises(ChecksumError, match="stage inpaint"):
        load_checkpoint(directory)


def test_a_pipeline_stored_in_float16_is_half_the_file_and_restores_as_its_float32(pipeline_dir, tmp_path):
    directory, card = pipeline_dir
    half = assemble({n: directory for n in TINY}, tmp_path / "half", {"version": "t1h"}, storage="float16")
    assert half["storage"] == "float16" and "storage" not in card
    size = (tmp_path / "half" / "model.safetensors").stat().st_size
    assert size < 0.6 * (directory / "model.safetensors").stat().st_size
    assert all(v.dtype == torch.float16 for v in load_file(tmp_path / "half" / "model.safetensors").values())
    for name in TINY:  # each stage's digest is of its stored tensors, and still checked
        assert half["stages"][name]["tensors_sha256"] != card["stages"][name]["tensors_sha256"]
    full, _ = load_checkpoint(directory)
    model, _ = load_checkpoint(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        (a, _), (b, _) = full(x), model(x)
    assert (a - b).abs().max() < 2e-3  # one rounding of each weight
    weights = tmp_path / "half" / "model.safetensors"
    state = load_file(weights)
    state["detect.head.bias"] = state["detect.head.bias"] + 0.01
    save_file(state, weights, metadata={"architecture": "restore_pipeline"})
    half["weights_sha256"] = sha256_file(weights)
    (tmp_path / "half" / "card.json").write_text(json.dumps(half))
    with pytest.raises(ChecksumError, match="stage detect"):
        load_checkpoint(tmp_path / "half")


def test_a_stage_listed_as_another_architecture_is_refused(pipeline_dir):
    directory, card = pipeline_dir
    card["stages"]["detect"]["architecture"] = "damage_detector"
    (directory / "card.json").write_text(json.dumps(card))
    with pytest.raises(ChecksumError, match="stage detect"):
        load_checkpoint(directory)


def test_inpainter_keeps_every_pixel_outside_its_mask_and_sees_far():
    net = create_model("gated_inpainter").eval()
    assert net.receptive_field >= 128
    x = torch.rand(1, 3, 64, 72)
    mask = torch.zeros(1, 1, 64, 72)
    mask[..., 20:30, 10:60] = 1
    with torch.no_grad():
        out = net(x, mask)
    assert torch.equal(out[..., mask[0, 0] == 0], x[..., mask[0, 0] == 0])
    assert not torch.equal(out[..., 20:30, 10:60], x[..., 20:30, 10:60])


def test_tiles_agree_with_the_whole_image_at_the_inpainters_overlap(pipeline_dir, photo):
    model, _ = load_checkpoint(pipeline_dir[0])
    assert model.tile_overlap >= 128 and model.alignment == 4  # the inpainter asks for its overlap
    whole = Restorer(model, EngineConfig(tile=1024)).restore([photo])[0]
    tiled_engine = Restorer(model, EngineConfig(tile=256, overlap=64))
    assert tiled_engine.config.overlap == 128  # raised to what the pipeline needs
    tiled = tiled_engine.restore([photo])[0]
    assert np.abs(whole.image.astype(int) - tiled.image.astype(int)).max() <= 2
    assert np.abs(whole.mask.astype(int) - tiled.mask.astype(int)).max() <= 2  # uint8 0..255


def test_the_detectors_views_are_averaged_back_in_place_and_tiles_still_agree(pipeline_dir, photo):
    """views: the detector sees the picture mirrored, upside down and transposed; each answer is
    turned back before the average, so a mark stays where the damage is."""
    from restoration.archs.pipeline import detect_views

    model, _ = load_checkpoint(pipeline_dir[0])
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        plain = model.detect(x)
        assert torch.allclose(detect_views(model.detect, x, 1), plain)
        by_hand = (plain + model.detect(x.flip(-1)).flip(-1) + model.detect(x.flip(-2)).flip(-2)) / 3
        assert torch.allclose(detect_views(model.detect, x, 3), by_hand, atol=1e-6)
        by_hand = (3 * by_hand + model.detect(x.flip(-1, -2)).flip(-1, -2)) / 4
        assert torch.allclose(detect_views(model.detect, x, 4), by_hand, atol=1e-6)
        eight = detect_views(model.detect, x, 8)
        assert eight.shape == plain.shape
        assert torch.allclose(eight, detect_views(model.detect, x.flip(-1), 8).flip(-1), atol=1e-5)
        assert torch.allclose(
            eight, detect_views(model.detect, x.transpose(-1, -2), 8).transpose(-1, -2), atol=1e-5
        )
    model.views = 4
    with torch.no_grad():
        assert torch.allclose(model(x)[1], by_hand, atol=1e-6)
    whole = Restorer(model, EngineConfig(tile=1024)).restore([photo])[0]
    tiled = Restorer(model, EngineConfig(tile=256, overlap=64)).restore([photo])[0]
    assert np.abs(whole.image.astype(int) - tiled.image.astype(int)).max() <= 2
    assert np.abs(whole.mask.astype(int) - tiled.mask.astype(int)).max() <= 2
    with pytest.raises(ValueError, match="views"):
        create_model("restore_pipeline_test", views=5)


def test_the_denoise_strength_takes_the_picture_that_far_towards_the_denoisers_output(pipeline_dir, photo):
    """denoise_strength (assembled with --denoise-strength): 1 is the denoiser's output, 0 the
    filled picture, 0.5 half way; the card records it, and tiles still agree."""
    directory, _ = pipeline_dir
    model, _ = load_checkpoint(directory)
    x = torch.from_numpy(photo[:64, :96].copy()).permute(2, 0, 1)[None].float() / 255
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.denoise.parameters():  # untrained, it returns its input: make it do something
            p.add_(torch.randn_like(p) * 0.02)
        full = model(x)[0]
        denoise, model.denoise = model.denoise, None
        filled = model(x)[0]
        model.denoise, model.denoise_strength = denoise, 0.5
        half = model(x)[0]
        model.denoise_strength = 0.0
        assert torch.equal(model(x)[0], filled)
    assert (full - filled).abs().max() > 0.01  # the tiny denoiser does change the picture
    assert torch.allclose(half, (full + filled) / 2, atol=1e-5)
    model.denoise_strength = 0.5
    whole = Restorer(model, EngineConfig(tile=1024)).restore([photo])[0]
    tiled = Restorer(model, EngineConfig(tile=256, overlap=64)).restore([photo])[0]
    assert np.abs(whole.image.astype(int) - tiled.image.astype(int)).max() <= 2
    with pytest.raises(ValueError, match="strength"):
        create_model("restore_pipeline_test", denoise_strength=1.5)


def test_a_curators_mask_is_used_instead_of_the_detector(pipeline_dir, photo):
    model, _ = load_checkpoint(pipeline_dir[0])
    model.denoise = None  # so that every pixel outside the grown mask must come back as it was
    supplied = np.zeros(photo.shape[:2], np.uint8)
    supplied[50:60, 20:200] = 255
    result = Restorer(model, EngineConfig(tile=1024)).restore([photo], masks=[supplied])[0]
    grown = np.zeros_like(supplied, bool)
    grown[50 - model.grow : 60 + model.grow, 20 - model.grow : 200 + model.grow] = True
    assert np.array_equal(result.image[~grown], photo[~grown])
    assert np.abs(result.image[50:60, 20:200].astype(int) - photo[50:60, 20:200]).mean() > 1
    assert np.array_equal(result.mask > 127, supplied > 0)  # the saved mask is the one used
    with pytest.raises(ValueError, match="mask is 10x10"):
        Restorer(model).restore([photo], masks=[np.zeros((10, 10))])
    with pytest.raises(ValueError, match="cannot restore with a supplied mask"):
        Restorer(create_model("unet_restorer_test")).restore([photo], masks=[supplied])


def test_only_narrow_marks_are_filled_unless_a_curator_drew_the_mask(pipeline_dir, photo):
    """max_width: the detector's broad marks (a white collar looks like emulsion loss) are left as
    they are, its cracks are filled; a curator's mask is filled as drawn, broad or not."""
    model, _ = load_checkpoint(pipeline_dir[0])
    model.max_width, model.grow = 9, 0
    prob = torch.zeros(1, 1, 80, 80)
    prob[..., 10:14, 5:75] = 1.0  # a crack, 4 px wide
    prob[..., 40:70, 20:50] = 1.0  # a collar, 30 px wide
    holes = model.holes(prob)
    assert holes[..., 10:14, 5:75].min() == 1 and holes[..., 40:70, 20:50].max() == 0
    assert model.holes(prob, narrow_only=False)[..., 40:70, 20:50].min() == 1
    model.denoise = None
    supplied = np.zeros(photo.shape[:2], np.uint8)
    supplied[60:120, 60:120] = 255  # a broad loss the curator marked
    result = Restorer(model, EngineConfig(tile=1024)).restore([photo], masks=[supplied])[0]
    assert np.abs(result.image[60:120, 60:120].astype(int) - photo[60:120, 60:120]).mean() > 1


def test_a_broad_mark_the_detector_is_sure_of_is_filled(pipeline_dir):
    """broad_threshold: a lost corner the detector is sure of is filled, rim and all; a broad mark it
    is only fairly sure of (a collar, a flag's star) is still left as it is; cracks as before."""
    model, _ = load_checkpoint(pipeline_dir[0])
    model.max_width, model.grow = 9, 0
    prob = torch.zeros(1, 1, 80, 80)
    prob[..., 10:14, 5:75] = 0.7  # a crack, 4 px wide, above the threshold (0.5)
    prob[..., 40:70, 5:30] = 0.7  # a collar, broad, fairly sure
    prob[..., 40:70, 45:75] = 0.99  # a lost corner, broad, sure
    prob[..., 40:70, 44] = 0.7  # its frayed rim, only fairly sure
    unsure = model.holes(prob)
    assert unsure[..., 40:70, 44:75].max() == 0  # without broad_threshold, no broad mark is filled
    model.broad_threshold = 0.9
    holes = model.holes(prob)
    assert holes[..., 10:14, 5:75].min() == 1 and torch.equal(holes[..., 10:14, :], unsure[..., 10:14, :])
    assert holes[..., 40:70, 5:30].max() == 0  # the collar
    assert holes[..., 40:70, 45:75].min() > 0.8 and holes[..., 40:70, 44].min() > 0.5  # the corner, its rim
    with pytest.raises(ValueError, match="broad threshold"):
        create_model("restore_pipeline_test", threshold=0.6, broad_threshold=0.5)


class _Fixed(torch.nn.Module):
    """A detector that gives the same probabilities whatever it sees."""

    def __init__(self, prob: torch.Tensor):
        super().__init__()
        self.logits = torch.logit(prob.clamp(1e-4, 1 - 1e-4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, -1, -1)


def test_the_keep_head_is_not_consulted_where_the_detector_is_sure():
    """keep_below: where the detector passes it, and a grow round that, a hole is filled without
    looking under it (as a curator's mask is), so the half-lit edges of a crack are not kept; under
    a mark it is less sure of, the keep head still gives back what it sees."""
    torch.manual_seed(0)
    stages = {
        "detect": {"architecture": "damage_detector_test"},
        "inpaint": {"architecture": "gated_inpainter_test", "config": {"sees_under": True}},
    }
    model = create_model("restore_pipeline", stages=stages, threshold=0.4, grow=1).eval()
    with torch.no_grad():
        model.inpaint.keep.head.bias.fill_(6.0)  # a head that keeps nearly all it sees
    prob = torch.zeros(1, 1, 42, 42)  # 42 px: the inpainter pads to its alignment (4)
    prob[..., 10:13, 4:38] = 0.99  # a crack it is sure of
    prob[..., 28:31, 4:38] = 0.5  # a mark it is not sure of
    model.detect = _Fixed(prob)
    x = torch.rand(1, 3, 42, 42)
    with torch.no_grad():
        kept = model(x)[0]
        model.keep_below = 0.7
        y = model(x)[0]
        blind = model.inpaint(x, model.holes(prob), blind=True)
    crack = (..., slice(9, 14), slice(3, 39))  # the crack and its grown rim
    assert torch.allclose(y[crack], blind[crack], atol=1e-6)
    assert (kept[crack] - blind[crack]).abs().mean() > 0.1  # the head kept it: the test bites
    assert torch.equal(y[..., 20:, :], kept[..., 20:, :])  # the unsure mark: kept as before
    assert (y[..., 27:32, 3:39] - x[..., 27:32, 3:39]).abs().max() < 0.01
    with pytest.raises(ValueError, match="keep_below"):
        create_model("restore_pipeline_test", threshold=0.6, keep_below=0.5)


def test_a_staged_restorer_behind_the_tone_stage_keeps_its_stages_provenance(pipeline_dir, tmp_path):
    """with_tone over a pipeline that is not shipped on its own: the toned card still says which
    stage checkpoint each stage came from, and loading checks the whole."""
    from restoration.stages import with_tone

    card = with_tone(pipeline_dir[0], tmp_path / "toned", {"name": "restore-unet", "version": "t2"})
    inner = card["stages"]["restorer"]["from"]
    assert inner["version"] == "t1" and inner["weights_sha256"] == pipeline_dir[1]["weights_sha256"]
    assert inner["stages"] == pipeline_dir[1]["stages"] and set(inner["stages"]) == set(TINY)
    model, _ = load_checkpoint(tmp_path / "toned")
    assert model.restorer.broad_threshold == 0.0  # settings not in an old card keep their old meaning
    # a stage's training can start from, or take its detector from, the toned pipeline (as shipped)
    detect, _ = stage_of(tmp_path / "toned", "detect")
    assert torch.equal(
        detect.state_dict()["stem.0.weight"], model.restorer.detect.state_dict()["stem.0.weight"]
    )
    # and a new pipeline can be assembled with one of its stages, which keeps its provenance
    again = assemble(
        {"detect": tmp_path / "toned", "inpaint": pipeline_dir[0]}, tmp_path / "again", {"version": "t3"}
    )
    assert again["stages"]["detect"]["from"]["pipeline"] == "restore-unet@t2"
    assert (
        again["stages"]["detect"]["from"]["weights_sha256"]
        == inner["stages"]["detect"]["from"]["weights_sha256"]
    )
    rebuilt, _ = load_checkpoint(tmp_path / "again")
    assert torch.equal(rebuilt.detect.state_dict()["stem.0.weight"], detect.state_dict()["stem.0.weight"])


def test_tiles_agree_with_the_whole_image_when_only_narrow_marks_are_filled(pipeline_dir, photo):
    model, _ = load_checkpoint(pipeline_dir[0])
    model.max_width = 7
    whole = Restorer(model, EngineConfig(tile=1024)).restore([photo])[0]
    tiled = Restorer(model, EngineConfig(tile=256, overlap=64)).restore([photo])[0]
    assert np.abs(whole.image.astype(int) - tiled.image.astype(int)).max() <= 2
    model.max_width = 0
    every_mark = Restorer(model, EngineConfig(tile=1024)).restore([photo])[0]
    assert not np.array_equal(every_mark.image, whole.image)  # some marks were broad: the test bites
    model.max_width, model.broad_threshold = 7, 0.55  # broad marks it is sure of filled: tiles agree too
    model.threshold = 0.45
    sure = Restorer(model, EngineConfig(tile=1024)).restore([photo])[0]
    sure_tiled = Restorer(model, EngineConfig(tile=256, overlap=64)).restore([photo])[0]
    assert np.abs(sure.image.astype(int) - sure_tiled.image.astype(int)).max() <= 2
    assert not np.array_equal(sure.image, whole.image)


# -- training ------------------------------------------------------------------------------------


def test_losses_run_in_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 3, 64, 64, generator=g)
    pred = (target + 0.15 * torch.randn(4, 3, 64, 64, generator=g)).clamp(0, 1)
    mask = (torch.rand(4, 1, 64, 64, generator=g) > 0.9).float()
    logits = torch.randn(4, 1, 64, 64, generator=g)
    want = (losses.reconstruction(pred, target, 0.2, mask, 4.0), losses.mask_loss(logits, mask))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = (losses.reconstruction(pred, target, 0.2, mask, 4.0), losses.mask_loss(logits, mask))
    for w, o in zip(want, got, strict=True):
        assert o.dtype == torch.float32 and torch.allclose(w, o, rtol=1e-6, atol=1e-7)


def test_batches_built_in_worker_processes_equal_the_in_process_ones():
    from restoration.data import TRAIN_IMAGES, bundled_images

    images = list(bundled_images(TRAIN_IMAGES[:3]).values())
    make = batch_maker(StageConfig(stage="detect", batch=2, crop=48, zoom=4.0), images)
    inproc = [make(step) for step in range(5, 8)]
    workers = list(batch_loader(make, 5, 8, workers=2))
    assert len(workers) == 3
    for a, b in zip(inproc, workers, strict=True):
        assert torch.equal(a.degraded, b.degraded) and torch.equal(a.mask, b.mask) and a.params == b.params
    nearer = batch_maker(StageConfig(stage="detect", batch=2, crop=48), images)(5)
    assert not torch.equal(nearer.degraded, inproc[0].degraded)  # the zoom reached the batches
    legacy = step_batch(images, 0, 2, 48, DegradationConfig(), False, 3)  # the restorer's batches too
    assert torch.equal(legacy.degraded, next(iter(batch_loader(lambda s: legacy, 3, 4, workers=0))).degraded)


class _MarksBright(torch.nn.Module):
    """A stand-in detector that marks one kind of thing: pure white pixels."""

    def forward(self, x):
        return (x.min(dim=1, keepdim=True).values > 0.99).float() * 20 - 10


def test_an_inpainter_that_sees_under_its_holes_keeps_the_fill_of_the_blind_one_it_is_loaded_from():
    torch.manual_seed(0)
    blind = create_model("gated_inpainter_test").eval()
    config = StageConfig(
        stage="inpaint", architecture="gated_inpainter_test", arch_config={"sees_under": True}
    )
    trainer = StageTrainer(config, [], [], log=lambda _: None)
    assert trainer.init_from(blind) == ["keep"]  # a new part, named for the card
    assert {n.split(".")[0] for n, p in trainer.net.named_parameters() if p.requires_grad} == {"keep"}
    seeing = trainer.net.eval()
    x = torch.rand(2, 3, 40, 44)
    holes = torch.zeros(2, 1, 40, 44)
    holes[..., 10:16, 4:40] = 1
    inside = holes[0, 0] == 1
    with torch.no_grad():
        fill = blind(x, holes)
        assert torch.equal(
            seeing(x, holes, blind=True), fill
        )  # a curator's mask: the blind fill, bit for bit
        start = seeing(x, holes)
        assert torch.equal(start[..., ~inside], x[..., ~inside])  # nothing outside the holes changes
        assert (start - fill).abs().max() < 0.05  # it starts keeping almost nothing
        seeing.keep.head.bias.fill_(20.0)  # a head that keeps everything gives back what is under
        assert torch.allclose(seeing(x, holes), x, atol=1e-6)
        per_picture = seeing(x, holes, blind=torch.tensor([1.0, 0.0]).view(2, 1, 1, 1))
        assert torch.allclose(per_picture[:1], fill[:1], atol=1e-6)
        assert torch.allclose(per_picture[1:], x[1:], atol=1e-6)
    again = create_model("gated_inpainter_test", sees_under=True)
    again.load_state_dict(seeing.state_dict(), strict=True)  # the state dict round trip
    assert torch.equal(again.eval()(x, holes), seeing(x, holes))


def test_the_inpainter_that_sees_under_learns_on_damage_in_its_holes_and_on_a_detectors_holes(pipeline_dir):
    from restoration.data import TRAIN_IMAGES, bundled_images
    from restoration.stage_training import INPAINT_HOLES, KEPT, UNDER_TONE, kept_holes

    images = list(bundled_images(TRAIN_IMAGES[:2]).values())
    common = dict(stage="inpaint", architecture="gated_inpainter_test", batch=3, crop=64, grow=1)
    holes = INPAINT_HOLES | {"relief": 0.3}  # no scan effects: every change is inside the holes
    common |= dict(tone=UNDER_TONE, holes=holes, val_crops=1, val_crop=64, workers=0, steps=2)
    plain = batch_maker(StageConfig(**common), images)(4)
    seeing = StageConfig(
        **common, arch_config={"sees_under": True}, detector=str(pipeline_dir[0]), max_width=5
    )
    under = batch_maker(dataclasses.replace(seeing, decoys=0.0), images)(4)
    # the same pictures and holes; the blind inpainter's input is the picture, the other's the damaged one
    assert torch.equal(plain.clean, under.clean) and torch.equal(plain.mask, under.mask)
    assert torch.equal(plain.degraded, plain.clean)
    inside, outside = under.mask > 0, under.mask == 0
    change = (under.degraded - under.clean).abs().amax(dim=1, keepdim=True)
    assert change[inside].mean() > 0.05 and change[outside].mean() < change[inside].mean() / 10
    # decoys: more holes, over picture left as it was (to be kept)
    decoyed = batch_maker(dataclasses.replace(seeing, decoys=1.0), images)(4)
    assert torch.equal(decoyed.degraded, under.degraded) and torch.equal(decoyed.clean, under.clean)
    decoy_only = (decoyed.mask > 0) & (under.mask == 0)
    assert (decoyed.mask >= under.mask).all() and decoy_only.sum() > 0.02 * decoyed.mask.numel()
    assert change[decoy_only].mean() < change[inside].mean() / 10
    # what the keep weight counts: the decoys' picture and the rims the grow adds, not the damage
    kept = kept_holes(decoyed.degraded, decoyed.clean, decoyed.mask) > 0
    damage = inside & (change >= KEPT)
    assert (
        kept[decoy_only].float().mean() > 0.9
        and not kept[damage].any()
        and not kept[outside & ~decoy_only].any()
    )

    trainer = StageTrainer(seeing, images, images, log=lambda _: None)
    weighted = StageTrainer(dataclasses.replace(seeing, keep_weight=4.0), images, images, log=lambda _: None)
    weighted.net.load_state_dict(trainer.net.state_dict())
    with torch.no_grad():
        filled = trainer.net(decoyed.degraded, decoyed.mask)
        extra = 4.0 * (filled - decoyed.clean).abs().mean(dim=1, keepdim=True)[kept].mean()
        base, weighed = (t.loss(t.net, decoyed)[0] for t in (trainer, weighted))
    assert extra > 0 and torch.allclose(weighed, base + extra, rtol=1e-4)
    model, _ = load_checkpoint(pipeline_dir[0])
    model.grow, model.max_width = 1, 5
    detected = trainer.with_detected(under, 4)
    with torch.no_grad():  # the holes are the damage's and those the pipeline would fill
        drawn = model.holes(torch.sigmoid(model.detect(under.degraded)))
    assert torch.equal(detected.mask, torch.maximum(under.mask, drawn))
    assert (drawn * (under.mask == 0)).sum() > 0  # some of the detector's holes are not damage
    trainer.run(pipeline_dir[0].parent / "state")
    assert trainer.step == 2 and np.isfinite(trainer.history[-1]["loss"])
    assert set(trainer.validate()) == {"hole_psnr", "psnr", "kept_psnr"}


def test_varied_grow_grows_each_pictures_holes_and_the_detectors_by_its_own_amount(pipeline_dir):
    from restoration.data import TRAIN_IMAGES, bundled_images
    from restoration.stage_training import INPAINT_HOLES, UNDER_TONE, grows

    images = list(bundled_images(TRAIN_IMAGES[:2]).values())
    common = dict(stage="inpaint", architecture="gated_inpainter_test", batch=6, crop=64, decoys=0.0)
    common |= dict(tone=UNDER_TONE, holes=INPAINT_HOLES, val_crops=1, val_crop=64, workers=0, steps=2)
    common |= dict(arch_config={"sees_under": True}, detector=str(pipeline_dir[0]), max_width=5)
    tight = batch_maker(StageConfig(**common, grow=0), images)(4)
    varied = StageConfig(**common, grow=2, vary_grow=True)
    batch = batch_maker(varied, images)(4)
    by = grows(varied.seed, 4, 6, 2, True)
    assert set(by) == {0, 1, 2}  # the pictures of one batch grow differently
    assert torch.equal(batch.degraded, tight.degraded)  # the same pictures, damage and holes
    for mask, ungrown, g in zip(batch.mask, tight.mask, by, strict=True):
        assert torch.equal(mask, F.max_pool2d(ungrown[None], 2 * g + 1, 1, g)[0] if g else ungrown)
    assert torch.equal(
        batch_maker(StageConfig(**common, grow=2), images)(4).mask, F.max_pool2d(tight.mask, 5, 1, 2)
    )
    # a detector's holes over a picture grow as that picture's own holes do
    detected = StageTrainer(varied, images, images, log=lambda _: None).with_detected(batch, 4)
    model, _ = load_checkpoint(pipeline_dir[0])
    model.max_width = 5
    with torch.no_grad():
        prob = torch.sigmoid(model.detect(batch.degraded))
    for i, g in enumerate(by):
        model.grow = g
        drawn = model.holes(prob[i : i + 1])
        assert torch.equal(detected.mask[i : i + 1], torch.maximum(batch.mask[i : i + 1], drawn))


def test_a_pipeline_fills_a_curators_mask_without_looking_under_it():
    from restoration.archs.pipeline import RestorePipeline

    torch.manual_seed(0)
    stages = {
        "detect": {"architecture": "damage_detector_test"},
        "inpaint": {"architecture": "gated_inpainter_test", "config": {"sees_under": True}},
    }
    pipeline = RestorePipeline(stages, grow=0).eval()
    x = torch.rand(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:12, 2:30] = 1
    with torch.no_grad():
        restored, _ = pipeline(x, mask)
        assert torch.equal(restored, pipeline.inpaint(x, mask, blind=True))
        assert not torch.equal(restored, pipeline.inpaint(x, mask))


def test_hard_negatives_are_where_a_detector_marks_clean_photographs_and_crops_centre_on_them():
    from restoration.data import Focus, random_crops
    from restoration.stage_training import hard_negatives

    rng = np.random.default_rng(0)
    img = (rng.random((120, 160, 3)) * 200).astype(np.uint8)
    img[30, 100:110] = 255  # a thin white line: the only thing marked
    blank = np.zeros((64, 64, 3), np.uint8)
    points = hard_negatives(_MarksBright(), [blank, img], limit=4)
    assert len(points[0]) == 0 and len(points[1]) == 4
    assert all(r == 30 and 100 <= c < 110 for r, c in points[1])
    crops = random_crops([blank, img], 6, 32, np.random.default_rng(1), focus=Focus(points, 1.0))
    # every crop is from the marked image, the line (turned or flipped) through its centre
    assert all((c.min(dim=0).values > 0.99).any(dim=1)[14:18].any() for c in crops)
    uniform = random_crops([blank, img], 6, 32, np.random.default_rng(1), focus=Focus(points, 0.0))
    assert not torch.equal(crops, uniform)
    with pytest.raises(ValueError):
        Focus(points, 1.5)


@pytest.mark.parametrize(
    "stage, arch",
    [
        ("detect", "damage_detector_test"),
        ("inpaint", "gated_inpainter_test"),
        ("denoise", "unet_restorer_test"),
    ],
)
def test_a_stage_trains_resumes_exactly_and_exports(stage, arch, tmp_path):
    from restoration.data import TRAIN_IMAGES, bundled_images

    images = list(bundled_images(TRAIN_IMAGES[:2]).values())
    config = StageConfig(
        stage=stage, architecture=arch, steps=6, batch=2, crop=48, val_crops=1, val_crop=48, workers=0
    )
    straight = StageTrainer(config, images, images, log=lambda _: None)
    straight.run(tmp_path / "a")
    StageTrainer(config, images, images, log=lambda _: None).run(tmp_path / "b", until=3)
    resumed = StageTrainer(config, images, images, log=lambda _: None)
    resumed.run(tmp_path / "b")
    assert resumed.step == 6 and [s["to_step"] for s in resumed.sessions] == [3, 6]
    for k, v in straight.ema.state_dict().items():
        assert torch.allclose(v, resumed.ema.state_dict()[k], atol=1e-6), k
    metrics = straight.validate()
    assert (
        set(metrics)
        == {
            "detect": {"mask_f1"},
            "inpaint": {"hole_psnr", "psnr"},
            "denoise": {"psnr", "ssim", "input_psnr"},
        }[stage]
    )


def test_the_denoise_stage_learns_on_noise_and_blur_alone_and_on_photographs_left_as_they_are():
    """Its crops: grain, noise, blur, resampling, JPEG (no damage: the inpainter's), and a share
    left as they are, the target its own input, so that a clean photograph's texture is kept."""
    from restoration.data import TRAIN_IMAGES, bundled_images
    from restoration.stage_training import DENOISE_PROBABILITIES, DENOISE_UNTOUCHED

    config = StageConfig(stage="denoise", batch=64, crop=32, seed=3)
    assert config.degradation == DENOISE_PROBABILITIES and config.untouched == DENOISE_UNTOUCHED
    assert StageConfig(stage="detect").untouched == 0.2 and "craquelure" in StageConfig().degradation
    batch = batch_maker(config, list(bundled_images(TRAIN_IMAGES[:3]).values()))(0)
    same = (batch.degraded == batch.clean).flatten(1).all(dim=1)
    assert 0.15 < same.float().mean() < 0.6  # about a third left as they are, the rest changed
    assert not batch.mask.any()  # nothing to mark: no damage in its mixture
    effects = {e["effect"] for applied in batch.params for e in applied}
    assert effects and effects <= set(DENOISE_PROBABILITIES), effects
    assert all(not applied for applied, kept in zip(batch.params, same, strict=True) if kept)


def test_the_cli_trains_each_stage_and_assembles_a_registrable_model(settings, tmp_path, monkeypatch, capsys):
    from flows.cli.main import main

    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    for stage, arch in TINY.items():
        assert (
            main(
                [
                    "train",
                    "stage",
                    "--stage",
                    stage,
                    "--architecture",
                    arch,
                    "--out",
                    str(tmp_path / stage),
                    "--steps",
                    "2",
                    "--batch",
                    "2",
                    "--crop",
                    "48",
                    "--workers",
                    "0",
                    "--no-photos",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        card = json.loads((tmp_path / stage / "card.json").read_text())
        assert (
            card["task"] == f"restore-{stage}"
            and card["how"]["code_version"]
            and card["sessions"][0]["to_step"] == 2
        )
    # a detector fine-tuned from the first, its crops centred where the first marks clean photographs
    first = json.loads((tmp_path / "detect" / "card.json").read_text())
    tune = ["train", "stage", "--stage", "detect", "--architecture", "damage_detector_test"]
    tune += ["--out", str(tmp_path / "tuned"), "--steps", "2", "--batch", "2", "--crop", "48"]
    tune += ["--workers", "0", "--no-photos", "--device", "cpu", "--init-from", str(tmp_path / "detect")]
    changed = ["--probabilities", '{"losses": 0.25}']
    assert main([*tune, "--hard-negatives", str(tmp_path / "detect"), "--focus", "0.5", *changed]) == 0
    assert (
        json.loads((tmp_path / "tuned" / "card.json").read_text())["training"]["degradation"]["losses"]
        == 0.25
    )
    capsys.readouterr()
    unknown = ["--probabilities", '{"smudges": 0.5}', "--out", str(tmp_path / "smudged")]
    assert main([*tune, *unknown]) == 2 and not (tmp_path / "smudged" / "card.json").exists()
    err = capsys.readouterr().err.strip()
    assert "smudges" in err.splitlines()[-1] and "Traceback" not in err  # a usage error, not a crash
    how = json.loads((tmp_path / "tuned" / "card.json").read_text())["how"]
    assert how["init_from"]["weights_sha256"] == first["weights_sha256"]
    assert how["hard_negatives"]["weights_sha256"] == first["weights_sha256"]
    assert (
        how["hard_negatives"]["points"] >= 0
        and "focus" in json.loads((tmp_path / "tuned" / "card.json").read_text())["training"]
    )
    tune[3] = "inpaint"
    assert main([*tune, "--hard-negatives", str(tmp_path / "detect")]) == 2  # a usage error, not a crash
    capsys.readouterr()
    assert main([*tune, "--keep-weight", "4"]) == 2  # a blind inpainter has no keep head to weigh
    assert "--keep-weight is for" in capsys.readouterr().err
    tune[3] = "detect"
    assert main([*tune, "--vary-grow", "--out", str(tmp_path / "varied")]) == 2  # a detector has no holes
    assert "--vary-grow is for --stage inpaint" in capsys.readouterr().err
    assert not (tmp_path / "varied").exists()
    assemble_cmd = ["train", "pipeline", "--detect", str(tmp_path / "detect")]
    assemble_cmd += ["--inpaint", str(tmp_path / "inpaint"), "--name", "restore-unet"]
    assert (
        main(
            [*assemble_cmd, "--out", str(tmp_path / "pipe"), "--version", "v7", "--grow", "1", "--views", "4"]
        )
        == 0
    )
    card = json.loads((tmp_path / "pipe" / "card.json").read_text())
    capsys.readouterr()
    no_stage = ["--denoise", str(tmp_path / "pipe"), "--version", "v8", "--out", str(tmp_path / "pipe2")]
    assert main([*assemble_cmd, *no_stage]) == 1 and not (tmp_path / "pipe2").exists()
    err = capsys.readouterr().err.strip()
    assert err.endswith("the pipeline has no denoise stage") and "\n" not in err  # one line, no traceback
    assert card["config"]["grow"] == 1 and card["stages"]["inpaint"]["from"]["task"] == "restore-inpaint"
    assert card["config"]["views"] == 4 and load_checkpoint(tmp_path / "pipe")[0].views == 4
    denoised = ["--denoise", str(tmp_path / "denoise"), "--version", "v9", "--out", str(tmp_path / "pipe3")]
    assert main([*assemble_cmd, *denoised, "--denoise-strength", "0.5", "--storage", "float16"]) == 0
    assert load_checkpoint(tmp_path / "pipe3")[0].denoise_strength == 0.5
    sure = [
        "--max-width",
        "9",
        "--broad-threshold",
        "0.9",
        "--version",
        "v10",
        "--out",
        str(tmp_path / "pipe4"),
    ]
    assert main([*assemble_cmd, *sure, "--keep-below", "0.95"]) == 0
    pipe4 = load_checkpoint(tmp_path / "pipe4")[0]
    assert pipe4.broad_threshold == 0.9 and pipe4.keep_below == 0.95
    capsys.readouterr()
    clash = ["--keep-below", "0.4", "--version", "v11", "--out", str(tmp_path / "pipe5")]
    assert main([*assemble_cmd, *clash]) == 1 and not (tmp_path / "pipe5").exists()
    err = capsys.readouterr().err.strip()
    assert "keep_below is above the threshold (0.5)" in err and "\n" not in err
    assert json.loads((tmp_path / "pipe4" / "card.json").read_text())["config"]["broad_threshold"] == 0.9
    assert json.loads((tmp_path / "pipe3" / "card.json").read_text())["storage"] == "float16"
    stages = json.loads((tmp_path / "pipe3" / "card.json").read_text())["stages"]
    assert (
        stages["denoise"]["from"]["task"] == "restore-denoise"
        and stages["denoise"]["architecture"] == TINY["denoise"]
    )
    base = ["--db", settings.db.url, "--output", settings.store.output]
    assert main([*base, "models", "register", str(tmp_path / "pipe")]) == 0


def test_a_lent_gpu_trains_a_stage_for_a_fixed_time_and_exports_a_checkpoint_with_its_card(tmp_path):
    """restoration.device_train (the script a lent GPU runs, which has only restoration/): it stops
    at its time budget wherever the schedule is, and the card says how far it got and on what."""
    from restoration.checkpoints import load_checkpoint
    from restoration.device_train import main

    rng = np.random.default_rng(0)
    pictures = {f"train/p{i}": rng.integers(0, 256, (80, 80, 3), dtype=np.uint8) for i in range(3)}
    np.savez_compressed(
        tmp_path / "photos.npz", **pictures, **{"val/v": rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)}
    )
    args = [
        "train",
        "--stage",
        "detect",
        "--images",
        str(tmp_path / "photos.npz"),
        "--out",
        str(tmp_path / "detect"),
        "--state",
        str(tmp_path / "state"),
        "--seconds",
        "4",
        "--steps",
        "100000",
        "--batch",
        "2",
        "--crop",
        "32",
        "--workers",
        "0",
        "--arch-config",
        '{"base": 8, "depth": 2}',
        "--code-version",
        "0.1.0+gtest",
    ]
    main(args)
    model, card = load_checkpoint(tmp_path / "detect")
    done = card["training"]["steps_done"]
    assert 0 < done < 100000 and card["sessions"][0]["to_step"] == done
    assert card["code_version"] == "0.1.0+gtest" and card["data"]["train"] == ["p0", "p1", "p2"]
    assert "mask_f1" in card["metrics"] and card["training"]["visible"] == 0.03
    # fine-tuned from that checkpoint, crops centred where it marks the clean pictures
    tuned = args[: args.index("--out")] + ["--out", str(tmp_path / "tuned")] + args[args.index("--out") + 2 :]
    main([*tuned, "--init", str(tmp_path / "detect"), "--hard-negatives", str(tmp_path / "detect")])
    _, tuned_card = load_checkpoint(tmp_path / "tuned")
    assert tuned_card["how"]["init"]["weights_sha256"] == card["weights_sha256"]
    assert tuned_card["how"]["hard_negatives"]["weights_sha256"] == card["weights_sha256"]
    assert tuned_card["training"]["focus"] == 0.4
