"""The degradation model: seeded, replayable from its recorded parameters, masks exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restoration.degrade import DegradationConfig, degrade
from restoration.degrade.pipeline import (
    DAMAGE,
    LAST,
    SCAN,
    SCENE,
    STAINS,
    TONE,
    apply_plan,
    effect,
    sample_plan,
)


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    from skimage import data

    pics = [data.astronaut()[::4, ::4], data.chelsea()[:128, :128], data.coffee()[::3, ::3][:128, :128]]
    return (
        torch.stack([torch.from_numpy(np.ascontiguousarray(p[:128, :128])) for p in pics])
        .permute(0, 3, 1, 2)
        .float()
        / 255
    )


def test_same_seed_same_result_other_seed_other_result(photos):
    a, b, c = degrade(photos, 11), degrade(photos, 11), degrade(photos, 12)
    assert torch.equal(a.degraded, b.degraded) and torch.equal(a.mask, b.mask) and a.params == b.params
    assert not torch.equal(a.degraded, c.degraded)
    assert torch.equal(a.clean, photos)


def test_recorded_parameters_reproduce_the_result(photos):
    out = degrade(photos, 5)
    json.dumps(out.params)  # provenance must be storable as JSON
    for i, plan in enumerate(out.params):
        img, mask = apply_plan(photos[i : i + 1], plan)
        assert torch.equal(img, out.degraded[i : i + 1]) and torch.equal(mask, out.mask[i : i + 1])


def test_each_image_of_a_batch_gets_its_own_plan(photos):
    out = degrade(photos, 3)
    assert len(out.params) == 3 and len({json.dumps(p) for p in out.params}) == 3


@pytest.mark.parametrize("name", SCENE + TONE + STAINS + DAMAGE + SCAN + LAST)
def test_every_effect_changes_the_image_and_stays_in_range(photos, name):
    out = degrade(photos[:1], 2, DegradationConfig.only(name))
    assert [step["effect"] for step in out.params[0]] == [name]
    assert out.degraded.shape == photos[:1].shape
    assert 0 <= out.degraded.min() and out.degraded.max() <= 1
    assert (out.degraded - photos[:1]).abs().mean() > 1e-4
    if name not in DAMAGE:
        assert out.mask.sum() == 0  # only structural damage is marked


@pytest.mark.parametrize("name", DAMAGE)
@pytest.mark.parametrize("seed", range(5))
def test_damage_masks_mark_exactly_the_changed_pixels(name, seed):
    grey = torch.full((1, 3, 96, 128), 0.5)
    sample, apply = effect(name)
    params = sample(np.random.default_rng(seed), 96, 128)
    damaged, mask = apply(grey, params)
    assert mask.shape == (1, 1, 96, 128) and set(mask.unique().tolist()) <= {0.0, 1.0}
    diff = (damaged - grey).abs().amax(1, keepdim=True)
    if name == "water_stain":  # its tinted interior still shows the picture: only the tide line is lost
        assert diff[diff > 0].numel() > mask.sum()
    else:
        assert torch.all(diff[mask == 0] == 0), "pixels outside the mask were changed"
    if mask.sum() > 0:  # geometry may fall outside a small image; when inside, it must show (13+ levels)
        assert diff[mask == 1].min() > 0.05


def test_config_is_checked_and_digested():
    with pytest.raises(ValueError, match="unknown degradation effects"):
        DegradationConfig({"gaussian_blurr": 1.0})
    assert DegradationConfig().digest() == DegradationConfig().digest()
    assert DegradationConfig().digest() != DegradationConfig.only("dust").digest()


@pytest.mark.parametrize(
    "name", ["craquelure", "relief", "creases", "losses", "flaking", "foxing", "water_stain"]
)
def test_realistic_damage_is_seeded_and_leaves_a_mark_where_real_damage_does(name):
    sample, apply = effect(name)
    a, b, c = (sample(np.random.default_rng(s), 200, 300) for s in (7, 7, 8))
    assert a == b and a != c and json.dumps(a)
    grey = torch.full((1, 3, 200, 300), 0.45)
    out, mask = apply(grey, a)
    assert torch.equal(out, apply(grey, b)[0]) and 0 < mask.mean() < 0.6


def test_cracks_are_paper_bright_branching_and_as_wide_as_the_real_ones():
    """The real prints' cracks: paper showing (lighter than the print), mostly 1-8 px at 1000 px
    (the widest, p90, up to 2% of the short side), a network of many segments, not one stroke."""
    sample, apply = effect("craquelure")
    widths, shares = [], []
    for seed in range(12):
        p = sample(np.random.default_rng(seed), 1000, 1000)
        widths += [seg[4] for seg in p["segments"]]
        shares.append(apply(torch.full((1, 3, 1000, 1000), 0.4), p)[1].mean().item())
    assert 1 <= min(widths) and 1 <= np.percentile(widths, 50) < 8 and np.percentile(widths, 90) <= 20
    assert max(widths) <= 30 and len(widths) > 12 * 50
    assert 0.002 < np.median(shares) < 0.08
    bright = [sample(np.random.default_rng(s), 100, 100)["colour"][0] > 0.8 for s in range(40)]
    assert 0.7 < np.mean(bright) < 0.95  # most show the paper; some hold dirt


def test_cracks_in_relief_are_hairlines_lit_on_one_side_and_shadowed_on_the_other():
    sample, apply = effect("relief")
    for seed in range(6):
        p = sample(np.random.default_rng(seed), 300, 300)
        grey = torch.full((1, 3, 300, 300), 0.5)
        out, mask = apply(grey, p)
        change = (out - grey).mean(1, keepdim=True)[mask == 1]
        assert (change > 0.05).any() and (change < -0.05).any()  # a lit lip and its shadow
        assert {seg[4] for seg in p["segments"]} <= {1.0, 2.0} and mask.mean() < 0.1


def test_translucent_marks_leave_no_mask_and_keep_the_picture():
    photo = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for name in STAINS:
        out = degrade(photo, 3, DegradationConfig.only(name))
        assert out.mask.sum() == 0 and 0 < (out.degraded - photo).abs().mean() < 0.2


def test_the_scan_comes_after_the_damage_and_softens_it_without_unmarking_it():
    """A damaged print, then scanned: blur, grain and toning go over the cracks too (real cracks are
    soft and tinted), after every damage effect and before the JPEG; the mask still marks them."""
    config = DegradationConfig(
        {"craquelure": 1.0, "scan_gaussian_blur": 1.0, "scan_yellowing": 1.0, "jpeg": 1.0}
    )
    plan = sample_plan(np.random.default_rng(4), 128, 128, config)
    names = [step["effect"] for step in plan]
    assert (
        names[0] == "craquelure"
        and set(names[1:3]) == {"scan_gaussian_blur", "scan_yellowing"}
        and names[3] == "jpeg"
    )
    grey = torch.full((1, 3, 128, 128), 0.3)
    crisp, crisp_mask = apply_plan(grey, plan[:1])
    scanned, mask = apply_plan(grey, plan[:3])
    assert torch.equal(mask, crisp_mask) and mask.sum() > 0
    # softer: the crack's edge steps are smaller once blurred
    assert scanned.diff(dim=-1).abs().max() < crisp.diff(dim=-1).abs().max()


def test_plans_without_scan_effects_replay_as_before():
    config = DegradationConfig({"craquelure": 0.5, "dust": 0.5, "film_grain": 0.5, "jpeg": 0.5})
    with_zero = DegradationConfig(config.probabilities | {name: 0.0 for name in SCAN})
    for seed in range(5):
        a = sample_plan(np.random.default_rng(seed), 64, 64, config)
        assert a == sample_plan(np.random.default_rng(seed), 64, 64, with_zero)


def test_visible_masks_leave_out_damage_that_changed_nothing():
    """Paper-white cracks across a white collar destroyed nothing a detector could see."""
    white, grey = torch.ones(1, 3, 128, 128), torch.full((1, 3, 128, 128), 0.3)
    plan = [{"effect": "craquelure", **effect("craquelure")[0](np.random.default_rng(1), 128, 128)}]
    plan[0]["colour"], plan[0]["opacity"], plan[0]["texture"] = [1.0, 1.0, 1.0], 1.0, 0.0
    assert apply_plan(white, plan)[1].sum() > 0  # the recorded damage
    assert apply_plan(white, plan, visible=0.03)[1].sum() == 0  # none of it shows
    assert torch.equal(apply_plan(grey, plan, visible=0.03)[1], apply_plan(grey, plan)[1])  # all of it shows


def test_picture_structures_come_first_and_are_never_marked():
    """Lattices, lettering and outlines are part of the scene (what the detector must leave): drawn
    before the tone effects and the damage, thin, and outside every mask."""
    scene_effects = {"lattice": 1.0, "lettering": 1.0, "outlines": 1.0}
    config = DegradationConfig(scene_effects | {"film_grain": 1.0, "craquelure": 1.0})
    out = degrade(torch.full((2, 3, 128, 128), 0.4), 5, config)
    for plan in out.params:
        assert [step["effect"] for step in plan][:3] == ["lattice", "lettering", "outlines"]
    scene, mask = apply_plan(torch.full((1, 3, 128, 128), 0.4), out.params[0][:3])
    changed = (scene - 0.4).abs().amax(1)[0] > 0.05
    assert 0.005 < changed.float().mean() < 0.6 and mask.sum() == 0


def test_glints_are_soft_bright_highlights_of_the_scene():
    """Highlights on shiny things: seeded, not damage (no mask), brighter than the picture where
    they light it, and soft-edged: the pixels lit to half its peak are a part of those it lights."""
    grey = torch.full((1, 3, 160, 160), 0.35)
    for seed in range(8):
        p = effect("glints")[0](np.random.default_rng(seed), 160, 160)
        a, mask = apply_plan(grey, [{"effect": "glints", **p}])
        b, _ = apply_plan(grey, [{"effect": "glints", **p}])
        assert torch.equal(a, b) and mask.sum() == 0
        for g in p["glints"]:
            g["shade"] = 0.0
        unshaded, _ = apply_plan(grey, [{"effect": "glints", **p}])
        lit = (unshaded - grey).amax(1)[0]
        assert lit.max() > 0.3  # a highlight, not a stain
        assert (lit > 0.5 * lit.max()).sum() < 0.7 * (lit > 0.05).sum()  # soft edges (a crisp line: 1)
        assert ((unshaded - grey) >= -1e-6).all()  # the light only brightens; the body only shades


def test_outlines_are_thin_lines_of_the_scene():
    """Rims, hands and wires: seeded (the same plan draws the same lines), thin (no 5 x 5 square
    fits in what they change), and not damage (no mask)."""
    grey = torch.full((1, 3, 160, 160), 0.45)
    for seed in range(6):
        p = effect("outlines")[0](np.random.default_rng(seed), 160, 160)
        p["soften"] = 0.0
        a, mask = apply_plan(grey, [{"effect": "outlines", **p}])
        b, _ = apply_plan(grey, [{"effect": "outlines", **p}])
        assert torch.equal(a, b) and mask.sum() == 0
        changed = ((a - grey).abs().amax(1) > 0.05).float()[None]
        assert changed.mean() > 0.001
        broad = -F.max_pool2d(-changed, 7, 1, 3)  # where a 7 x 7 square fits
        assert broad.sum() <= 0.01 * changed.sum()


def test_folds_are_long_straight_cracks_marked_where_drawn():
    """Cracks along a fold: seeded, marked exactly where the paper shows, thin, and straight: each
    fold's segments lie close to one line, and most folds run across half the picture or more."""
    grey = torch.full((1, 3, 200, 200), 0.5)
    spans = []
    for seed in range(12):
        p = effect("folds")[0](np.random.default_rng(seed), 200, 200)
        a, mask = apply_plan(grey, [{"effect": "folds", **p}])
        b, again = apply_plan(grey, [{"effect": "folds", **p}])
        assert torch.equal(a, b) and torch.equal(mask, again)
        changed = (a - grey).abs().amax(1)[0] > 0.05
        assert torch.equal(changed, mask[0, 0] > 0) and 0 < mask.mean() < 0.08  # marked where drawn, thin
        for fold in p["folds"]:
            ends = np.array([s[:2] for s in fold] + [s[2:4] for s in fold])
            centred = ends - ends.mean(0)
            axis = np.linalg.svd(centred, full_matrices=False)[2][0]  # the line that fits it best
            off = np.abs(centred @ np.array([-axis[1], axis[0]]))
            assert np.quantile(off, 0.75) < 0.03  # straight: within 6 px of one line (splinters aside)
            spans.append(np.ptp(centred @ axis))
    assert np.median(spans) > 0.5


def test_blossoms_are_small_pale_flowers_of_the_scene():
    """Daisies in a garden: seeded, not damage (no mask), pale petals round a heart, and thin: in a
    flower alone, no 7 x 7 square fits in what its petals lighten (a paper-white blob's would)."""
    grey = torch.full((1, 3, 200, 200), 0.3)
    for seed in range(6):
        p = effect("blossoms")[0](np.random.default_rng(seed), 200, 200)
        a, mask = apply_plan(grey, [{"effect": "blossoms", **p}])
        b, _ = apply_plan(grey, [{"effect": "blossoms", **p}])
        assert torch.equal(a, b) and mask.sum() == 0
        for c in p["clusters"]:
            c["ground"], c["flowers"] = 0.0, c["flowers"][:1]
        alone, _ = apply_plan(grey, [{"effect": "blossoms", **p}])
        pale = ((alone - grey).amin(1) > 0.3).float()[None]  # every channel lifted: white petals
        assert pale.mean() > 0.0005
        assert (-F.max_pool2d(-pale, 7, 1, 3)).sum() <= 0.05 * pale.sum()


def test_emblems_are_flat_regular_shapes_of_the_scene():
    """Stars and dots on a flag: seeded, not damage (no mask), each group's shapes are solid (pixels
    of exactly its colour, not a ring), and its ground, where it has one, is flat."""
    grey = torch.full((1, 3, 200, 200), 0.5)
    for seed in range(6):
        p = effect("emblems")[0](np.random.default_rng(seed), 200, 200)
        a, mask = apply_plan(grey, [{"effect": "emblems", **p}])
        b, _ = apply_plan(grey, [{"effect": "emblems", **p}])
        assert torch.equal(a, b) and mask.sum() == 0
        for g in p["groups"]:
            one = {**p, "groups": [g]}
            alone, _ = apply_plan(grey, [{"effect": "emblems", **one}])
            solid = ((alone[0] - torch.tensor(g["colour"])[:, None, None]).abs().amax(0) < 2 / 255).float()
            if g["size"] >= 8 and any(0 < x < 1 and 0 < y < 1 for x, y in g["points"]):
                assert solid.sum() > 0, g  # a shape on the picture is filled with its colour
            if g["ground"] is not None:  # the flag's field: flat, where no shape covers it
                ground = (alone[0] - torch.tensor(g["ground"])[:, None, None]).abs().amax(0) < 1 / 255
                x0, y0, x1, y1 = g["region"]
                assert (
                    ground.float().mean()
                    > 0.5 * max(0, min(x1, 1) - max(x0, 0)) * max(0, min(y1, 1) - max(y0, 0)) - 0.05
                )
