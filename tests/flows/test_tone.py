"""Restoring with the tone stage through the real Prefect engine (issue 20): the recipe records
tone and strength (so other values make other versions), the sidecar the correction fitted to
each image; bad values are one line; restore-files takes the same parameters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from flows.cli.main import main as archive_cli
from flows.model_versions import register
from flows.restore import restore_collection
from restoration.checkpoints import save_checkpoint
from restoration.factory import create_model
from tests.flows.test_restore import archive, derivatives  # noqa: F401 (a fixture)
from tests.flows.test_stylize import sidecar

pytestmark = pytest.mark.usefixtures("prefect_harness")

CONFIG = {"restorer": {"architecture": "unet_restorer", "config": {"base": 8, "depth": 2}}}


def toned_checkpoint(tmp_path, version: str = "t1"):
    torch.manual_seed(3)
    model = create_model("toned_restorer", **CONFIG)
    card = {"architecture": "toned_restorer", "config": CONFIG, "name": "restore-toned", "version": version}
    save_checkpoint(model, tmp_path / f"toned-{version}", card | {"task": "restore", "metrics": {}})
    return tmp_path / f"toned-{version}"


def test_tone_and_strength_are_in_the_recipe_and_the_fit_in_the_sidecar(archive, tmp_path):  # noqa: F811
    settings = archive
    register(settings, toned_checkpoint(tmp_path), status="candidate")
    summary = restore_collection("letters", "restore-toned@t1", settings=settings)
    assert (summary.selected, summary.restored, summary.failed) == (5, 5, 0)
    made = [d for _, d in derivatives(settings) if d.recipe["model"] == "restore-toned@t1"]
    assert len(made) == 5 and {d.version for d in made} == {1}
    for d in made:
        assert d.recipe["params"] == {"tone": "auto", "strength": 1.0}
        meta = sidecar(settings, d)
        assert meta["recipe"]["params"] == {"tone": "auto", "strength": 1.0}
        fit = meta["derived"]["tone"]
        assert fit["mode"] == "auto" and 0.0 <= fit["black"] < fit["white"] <= 1.0
    again = restore_collection(
        "letters", "restore-toned@t1", settings=settings
    )  # the same recipe: nothing to do
    assert again.selected == 0
    params = {"tone": "neutral", "strength": "0.5"}
    neutral = restore_collection("letters", "restore-toned@t1", settings=settings, params=params)
    assert (neutral.selected, neutral.restored, neutral.failed) == (5, 5, 0)
    newer = [d for _, d in derivatives(settings) if d.recipe["params"].get("tone") == "neutral"]
    assert len(newer) == 5 and {d.version for d in newer} == {2}
    assert not any(d.is_current for d in newer)  # beside the first, as any later version, until promoted
    assert {d.recipe_hash for d in newer}.isdisjoint({d.recipe_hash for d in made})
    assert all(sidecar(settings, d)["recipe"]["params"]["strength"] == 0.5 for d in newer)
    from flows.reprocess import promote

    assert promote(settings, "letters", "restore-toned@t1") == 5  # the newest versions it made: neutral's
    assert all(d.is_current for _, d in derivatives(settings) if d.recipe["params"].get("tone") == "neutral")
    page = catalogue(settings).get(f"/items/{newer[0].item_id}")  # the curator sees each version's
    assert page.status_code == 200 and "strength=0.5, tone=neutral" in page.text
    assert "strength=1.0, tone=auto" in page.text


def catalogue(settings):
    from fastapi.testclient import TestClient

    from archive_db.web.app import create_app
    from flows.db import sessions_for
    from flows.media import StoreMedia

    return TestClient(create_app(sessions_for(settings.db.url), StoreMedia(settings), "a token"))


def test_bad_parameters_are_one_line_before_anything_runs(archive, tmp_path, capsys):  # noqa: F811
    settings = archive
    base = ["--db", settings.db.url, "--output", settings.store.output]
    for model, param, message in [
        ("restore@production", "tone=auto", "error: --param: this model (unet_restorer) has no tone stage"),
        ("restore@production", "strength=2", "error: --param: strength must be between 0 and 1"),
        ("restore@production", "strength", "error: Invalid value for --param: 'strength' is not key=value"),
    ]:
        assert (
            archive_cli([*base, "restore", "--collection", "letters", "--model", model, "--param", param])
            != 0
        )
        err = capsys.readouterr().err.strip()
        assert err.startswith(message) and len(err.splitlines()) == 1
    assert not derivatives(settings)


def test_restore_files_takes_tone_and_strength_and_records_them(archive, tmp_path, capsys):  # noqa: F811
    settings = archive
    register(settings, toned_checkpoint(tmp_path, "t2"), status="candidate")
    rng = np.random.default_rng(0)
    faded = (rng.random((60, 80, 3)) * 140 + 70).astype(np.uint8)  # lifted blacks, dimmed whites
    Image.fromarray(faded).save(tmp_path / "faded.png")
    base = [
        "--db",
        settings.db.url,
        "--output",
        settings.store.output,
        "restore-files",
        str(tmp_path / "faded.png"),
    ]
    for out, params in [("auto", ["--param", "tone=auto"]), ("none", ["--param", "strength=0"])]:
        assert (
            archive_cli(
                [*base, "--out", str(tmp_path / out), "--model", "restore-toned@t2", "--masks", *params]
            )
            == 0
        )
    recipe = json.loads((tmp_path / "auto" / "faded.recipe.json").read_text())
    assert recipe["params"] == {"tone": "auto", "strength": 1.0} and recipe["derived"]["tone"]["black"] > 0
    untouched = json.loads((tmp_path / "none" / "faded.recipe.json").read_text())
    assert untouched["params"] == {"tone": "auto", "strength": 0.0} and untouched["derived"] is None
    assert np.array_equal(np.asarray(Image.open(tmp_path / "none" / "faded.png")), faded)
    assert not (tmp_path / "none" / "faded.mask.png").exists()  # no model ran, so no damage was found
    assert (
        archive_cli(
            [*base, "--out", str(tmp_path / "x"), "--model", "restore-toned@t2", "--param", "tone=sepia"]
        )
        != 0
    )
    assert "tone must be one of auto, neutral, off" in capsys.readouterr().err


@pytest.mark.parametrize("estimator", ["classical", "learned"])
def test_train_toned_puts_the_stage_before_a_restorer_as_one_model_version(tmp_path, estimator, capsys):
    from restoration.checkpoints import load_checkpoint
    from tests.flows.test_restore import checkpoint

    inner = checkpoint(tmp_path, "v1", 1)
    out = tmp_path / "toned"
    args = ["train", "toned", "--restorer", str(inner), "--out", str(out), "--version", "v2"]
    args += ["--estimator", estimator, "--steps", "2", "--no-photos", "--state", str(tmp_path / "t.state")]
    assert archive_cli(args) == 0
    model, card = load_checkpoint(out)  # every digest checked, the restorer's stage included
    assert card["architecture"] == "toned_restorer" and card["tone_stage"]["estimator"] == estimator
    assert card["stages"]["restorer"]["from"]["version"] == "v1"
    plain, _ = load_checkpoint(inner)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.restorer.state_dict().values(), plain.state_dict().values(), strict=True)
    )
    assert (model.estimator is None) == (estimator == "classical")
    if estimator == "learned":
        assert card["tone_stage"]["training"]["steps"] == 2 and card["tone_stage"]["history"] == []
    # neutral's estimate is the learned one averaged with the classical one (the default share)
    assert card["tone_stage"]["neutral_blend"] == model.tone_config.get("neutral_blend", 0.0)
    assert card["tone_stage"]["neutral_blend"] == (0.5 if estimator == "learned" else 0.0)
    # another restorer behind the same tone stage, taken from this one rather than trained again
    other = checkpoint(tmp_path, "v3", 2)
    again = ["train", "toned", "--restorer", str(other), "--out", str(tmp_path / "again"), "--version", "v4"]
    assert archive_cli([*again, "--tone-from", str(out), "--storage", "float16"]) == 0
    model2, card2 = load_checkpoint(tmp_path / "again")  # stored in float16, its digests still checked
    assert card2["storage"] == "float16" and card2["stages"]["restorer"]["from"]["version"] == "v3"
    assert card2["tone_stage"]["taken_from"]["weights_sha256"] == card["weights_sha256"]
    assert card2["tone_stage"]["estimator"] == estimator
    assert card2["tone_stage"]["neutral_blend"] == card["tone_stage"]["neutral_blend"]
    if estimator == "learned":
        for a, b in zip(
            model.estimator.state_dict().values(), model2.estimator.state_dict().values(), strict=True
        ):  # the same weights, each rounded once to float16
            assert torch.equal(a.half().to(a.dtype) if a.is_floating_point() else a, b)
    capsys.readouterr()
    again[5] = str(tmp_path / "third")
    assert archive_cli([*again, "--tone-from", str(inner)]) != 0
    assert "not a toned restorer" in capsys.readouterr().err and not (tmp_path / "third").exists()
