"""Training as Prefect flows, so that a training can be scheduled, run on the GPU work pool and
seen in the Prefect UI like any other run. ``archive train stage`` calls the same flow.

The flow trains one stage of the staged restorer (detect, inpaint or denoise) on synthetic realistic damage
of the bundled and Debian photographs, resumably (the state goes to ``OUT.training/``), and writes
the checkpoint with its card. Registering it as a model version stays a person's step
(``archive models register``): a training run never changes what the archive restores with.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow

from flows.errors import ConfigError
from restoration.recipe import STAGE_ARCHITECTURES

# An enlarger's default size per architecture. On 2 CPU cores, SRVGGNetCompact (its output the
# input enlarged by nearest neighbour plus what it learns) of 32 features and 8 convolutions was
# +0.37 dB over bicubic on its validation crops after 2000 steps of 16 crops (0.18 s a step); a
# small RRDBNet (581,000 parameters, 0.41 s a step; Real-ESRGAN's generator, which has no such
# shortcut and must learn to copy its input first) was still 1.06 dB below bicubic there.
UPSCALE_CONFIG = {
    "srvgg_compact": {"num_feat": 32, "num_conv": 12},
    "rrdbnet": {"num_feat": 32, "num_block": 3, "num_grow_ch": 16},
}


@flow(name="train-stage", validate_parameters=False)
def train_stage(
    stage: str,
    out: str,
    architecture: str | None = None,
    arch_config: dict[str, Any] | None = None,
    steps: int = 8000,
    batch: int = 8,
    crop: int = 128,
    lr: float = 1e-3,
    workers: int = 1,
    photos: bool = True,
    name: str = "restore-pipeline",
    version: str = "v1-stage",
    seed: int = 0,
    device: str = "auto",
    command: str | None = None,
    log=None,
    scale: int = 2,
    adv_weight: float = 0.0,
    warmup_steps: int = 0,
    disc_config: dict[str, Any] | None = None,
    init_from: str | None = None,
    hard_negatives: str | None = None,
    focus: float = 0.4,
    enlarge: dict[str, Any] | None = None,
    detector: str | None = None,
    grow: int = 2,
    max_width: int = 0,
    probabilities: dict[str, float] | None = None,
    zoom: float = 2.0,
    keep_weight: float = 0.0,
    vary_grow: bool = False,
) -> dict[str, Any]:
    """Train one stage; returns its validation metrics, the weights' path and sha256. Resumes from
    ``OUT.training/``. ``init_from`` (a checkpoint of the stage, or a pipeline holding one) is
    fine-tuned instead of a network from scratch. detect (and an inpainter that sees under its
    holes): ``hard_negatives`` (a checkpoint with a detector) is run over the clean training
    photographs, and a ``focus`` share of the crops is centred where it marked them (every such
    mark is a false one).
    ``command`` is what the card records as how it was started (the CLI passes its own). The
    upscale stage (an enlarger by ``scale``) is adversarial after ``warmup_steps`` when
    ``adv_weight`` > 0; its small copies are made with ``enlarge`` (EnlargeDegradation fields;
    default the ``scans`` preset of restoration.degrade.enlarge.PRESETS).
    inpaint: holes are the damage's grown by ``grow`` pixels; an inpainter that sees under its holes
    (``arch_config`` ``sees_under``) learns on damage drawn in them (UNDER_TONE, UNDER_HOLES) and,
    with ``detector`` (a checkpoint with a detect stage), also on the holes that detector draws
    (its marks narrower than ``max_width``, as the pipeline that will hold both fills them);
    ``keep_weight`` counts its error extra where the holes cover picture the damage left; with
    ``vary_grow`` each picture's holes grow by its own 0 to ``grow`` pixels.
    denoise (a unet_restorer, e.g. fine-tuned from restore-unet v5): grain, noise, blur and JPEG
    (DENOISE_PROBABILITIES) over the photographs, a DENOISE_UNTOUCHED share of the crops left as
    they are. ``probabilities`` change effects' probabilities in the stage's mixture (detect: the
    damage and look of old prints; inpaint: its holes; denoise: its noise and blur), recorded in the
    card with the rest of it."""
    import torch

    from flows.versions import code_version, software_versions
    from restoration import photos as debian
    from restoration.data import TRAIN_IMAGES, VALIDATION_IMAGES, bundled_images, data_card
    from restoration.degrade.enlarge import PRESETS
    from restoration.engine import resolve_device
    from restoration.stage_training import (
        UNDER_HOLES,
        UNDER_TONE,
        StageConfig,
        StageTrainer,
        export,
        hard_negatives_from,
        init_stage,
        stage_of,
    )

    if stage not in STAGE_ARCHITECTURES:
        raise ConfigError(f"stage must be one of {', '.join(STAGE_ARCHITECTURES)}, not {stage!r}")
    under = stage == "inpaint" and bool((arch_config or {}).get("sees_under"))
    if hard_negatives and not (stage == "detect" or under):
        raise ConfigError(
            "hard negatives are for the detect stage, or an inpainter that sees under its holes"
        )
    if detector and not under:
        raise ConfigError("a detector's holes are for an inpainter that sees under them (sees_under)")
    if keep_weight and not under:
        raise ConfigError("a keep weight is for an inpainter that sees under its holes (sees_under)")
    if vary_grow and stage != "inpaint":
        raise ConfigError("a varied grow is for the inpaint stage's holes")
    if photos and not debian.available():
        raise ConfigError(
            f"photos: {debian.ROOT} lacks the mate-backgrounds photographs "
            "(apt-get install mate-backgrounds); or train without them"
        )
    log = log or _prefect_log
    dev = resolve_device(device)
    architecture = architecture or STAGE_ARCHITECTURES[stage]
    arch_config = (
        enlarger_config(architecture, arch_config, scale) if stage == "upscale" else arch_config or {}
    )
    train_set = bundled_images(TRAIN_IMAGES) | (debian.load(debian.TRAIN) if photos else {})
    val_set = bundled_images(VALIDATION_IMAGES) | (debian.load(debian.HELD_OUT) if photos else {})
    # the other Debian wallpaper packages' photographs, where installed
    more, more_val, more_entries = debian.more_photographs() if photos else ({}, {}, [])
    train_set, val_set = train_set | more, val_set | more_val
    config = StageConfig(
        stage=stage,
        architecture=architecture,
        arch_config=arch_config,
        steps=steps,
        batch=batch,
        crop=crop,
        lr=lr,
        workers=workers,
        seed=seed,
        scale=scale,
        adv_weight=adv_weight if stage == "upscale" else 0.0,
        warmup_steps=warmup_steps,
        disc_config=disc_config or {},
        focus=focus if hard_negatives else 0.0,
        grow=grow,
        max_width=max_width,
        zoom=zoom,
        detector=str(detector or ""),
        keep_weight=keep_weight,
        vary_grow=vary_grow,
        **({"tone": dict(UNDER_TONE), "holes": dict(UNDER_HOLES)} if under else {}),
        enlarge=dict(PRESETS["scans"] if enlarge is None else enlarge) if stage == "upscale" else {},
    )
    if probabilities:
        try:
            config.change_mixture(probabilities)
        except ValueError as exc:  # an effect the degradation model lacks, or the upscale stage
            raise ConfigError(f"probabilities: {exc}") from None
    started = time.monotonic()
    how = {
        "command": command or f"prefect flow train-stage (stage={stage}, out={out}, steps={steps})",
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "code_version": code_version(),
    }  # the code that trains, read before it does
    if detector:
        how["detector"] = {
            "from": str(detector),
            "weights_sha256": stage_of(Path(detector), "detect")[1]["weights_sha256"],
        }
    points = None
    if hard_negatives:
        points, how["hard_negatives"] = hard_negatives_from(
            Path(hard_negatives), list(train_set.values()), seed
        )
        log(
            f"hard negatives: {how['hard_negatives']['points']} points where {hard_negatives} marks the clean "
            f"training photographs; {focus:.0%} of crops centred on one"
        )
    trainer = StageTrainer(
        config,
        list(train_set.values()),
        list(val_set.values()),
        device=str(dev),
        log=log,
        focus_points=points,
    )
    if init_from:
        try:
            how["init_from"] = init_stage(trainer, Path(init_from), stage)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        log(f"initialised from {init_from} ({how['init_from']['weights_sha256'][:16]}…)")
    target = Path(out)
    trainer.run(target.with_name(target.name + ".training"), session=how)
    metrics = trainer.validate()
    card = export(
        trainer,
        target,
        {
            "name": name,
            "version": version,
            "metrics": metrics,
            "code_version": code_version(),
            "how": how | {"wall_seconds_this_session": round(time.monotonic() - started)},
            "software": software_versions() | {"torch": torch.__version__},
            "data": {
                **data_card(train_set, val_set),
                "photographs": (debian.card_entries(debian.TRAIN + debian.HELD_OUT) if photos else [])
                + more_entries,
            },
        },
    )
    weights = target / card["weights"]
    return {"metrics": metrics, "checkpoint": str(weights), "weights_sha256": card["weights_sha256"]}


def enlarger_config(architecture: str, arch_config: dict[str, Any] | None, scale: int) -> dict[str, Any]:
    """An enlarger's architecture arguments (its default size where none are given), with its scale
    argument set to ``scale``; one that names another scale is refused."""
    from restoration import recipe

    try:
        return recipe.enlarger_config(
            architecture, arch_config or UPSCALE_CONFIG.get(architecture, {}), scale
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _prefect_log(message: str) -> None:
    from prefect import get_run_logger

    get_run_logger().info(message)
