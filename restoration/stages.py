"""Assembling the staged restorer: stage checkpoints (each trained on its own) become one
pipeline checkpoint, one model version to the catalogue, whose card lists every stage's
architecture, config, weights digest and where it came from; loading checks every digest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from restoration.checkpoints import load_checkpoint, save_checkpoint
from restoration.factory import create_model

# What a stage's own card contributes to the pipeline's (its provenance; not its history).
_FROM_STAGE = ("name", "version", "task", "metrics", "training", "data", "sessions", "weights_sha256")


def pipeline_stages(model: Any, card: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    """The staged pipeline a checkpoint holds and its card's listing of the stages: a
    restore_pipeline itself, or one behind the tone stage (the shipped restore-unet); anything
    else is returned as it is, with no listing."""
    if card["architecture"] == "restore_pipeline":
        return model, card["stages"]
    behind = card.get("stages", {}).get("restorer", {}).get("from", {}).get("stages")
    if card["architecture"] == "toned_restorer" and behind:
        return model.restorer, behind
    return model, None


def assemble(
    stage_dirs: dict[str, Path],
    directory: Path,
    card: dict[str, Any],
    storage: str = "float32",
    **pipeline_config,
) -> dict[str, Any]:
    """Build ``restore_pipeline`` from stage checkpoint folders ({"detect": …, "inpaint": …,
    "denoise": …}; each checked against its own card) and save it to ``directory``. A folder may
    hold an assembled pipeline instead (restore-unet v7): its stage of that name is taken, with
    the provenance its card lists for it and the pipeline it came out of; so may a pipeline behind
    the tone stage (the shipped restore-unet). ``storage`` is how the weights are stored
    (save_checkpoint's; "float16" halves the file)."""
    models, specs, listed = {}, {}, {}
    for name, stage_dir in stage_dirs.items():
        model, stage_card = load_checkpoint(Path(stage_dir))
        part, origin = stage_card, {k: stage_card[k] for k in _FROM_STAGE if k in stage_card}
        model, listing = pipeline_stages(model, stage_card)
        if listing is not None:  # take its stage of that name
            model, part = getattr(model, name, None), listing.get(name)
            if model is None:
                raise ValueError(f"{stage_dir}: the pipeline has no {name} stage")
            origin = part["from"] | {
                "pipeline": f"{stage_card.get('name')}@{stage_card.get('version')}",
                "pipeline_weights_sha256": stage_card["weights_sha256"],
            }
        models[name] = model
        specs[name] = {"architecture": part["architecture"], "config": part["config"]}
        listed[name] = specs[name] | {"from": origin}  # its tensors' digest: save_checkpoint's
    config = {"stages": specs, **pipeline_config}
    pipeline = create_model("restore_pipeline", **config)
    for name, model in models.items():
        getattr(pipeline, name).load_state_dict(model.state_dict(), strict=True)
    card = card | {"architecture": "restore_pipeline", "config": config, "task": "restore", "stages": listed}
    return save_checkpoint(pipeline, directory, card, storage=storage)


def with_tone(
    restorer_dir: Path,
    directory: Path,
    card: dict[str, Any],
    estimator: str = "classical",
    net: Any = None,
    tone_card: dict[str, Any] | None = None,
    neutral_blend: float = 0.0,
    storage: str = "float32",
) -> dict[str, Any]:
    """Build ``toned_restorer``: the restorer in ``restorer_dir`` (checked against its card) with
    the tone stage before it (its learned estimator ``net``, a ``ToneNet``, where ``estimator``
    is "learned", its ``neutral`` estimate moved ``neutral_blend`` of the way to the classical
    one), saved to ``directory``; the card lists the restorer as a stage, with its weights digest
    and where it came from (a staged restorer's stages included), and what ``tone_card`` says of
    the estimator."""
    model, inner = load_checkpoint(Path(restorer_dir))
    spec = {"architecture": inner["architecture"], "config": inner["config"]}
    tone: dict[str, Any] = {"estimator": estimator}
    if estimator == "learned":
        tone["net"] = dict(net.config)
        if neutral_blend:
            tone["neutral_blend"] = float(neutral_blend)
    config = {"restorer": spec, "tone": tone}
    toned = create_model("toned_restorer", **config)
    toned.restorer.load_state_dict(model.state_dict(), strict=True)
    if net is not None:
        toned.estimator.load_state_dict(net.state_dict(), strict=True)
    # a staged restorer's own stages (and where each came from) travel with it, so the chain holds
    # where the untoned pipeline is not shipped on its own
    origin = {k: inner[k] for k in (*_FROM_STAGE, "stages") if k in inner}
    stages = {"restorer": spec | {"from": origin}}
    card = card | {
        "architecture": "toned_restorer",
        "config": config,
        "task": "restore",
        "stages": stages,
        "tone_stage": {
            "estimator": estimator,
            "neutral_blend": tone.get("neutral_blend", 0.0),
            "code": "restoration.tone_stage",
            "runs": "first, fitted per image",
        }
        | (tone_card or {}),
    }
    return save_checkpoint(toned, directory, card, storage=storage)
