"""`archive train stage` and `archive train pipeline`: the staged restorer's stages, each trained
on its own (resumable), then assembled into one model version whose card vouches for each."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flows.cli.console import err, out, table
from restoration.recipe import ENLARGERS, VIEWS  # loads no torch


def _options(*decorators):
    """Several click options as one decorator (the training commands share them)."""

    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


_OUT = click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Where model.safetensors and card.json go; the resumable state goes to OUT.training/.",
)
_LEARNING = _options(
    click.option("--lr", type=click.FloatRange(0, min_open=True), default=1e-3, show_default=True),
    click.option(
        "--workers",
        type=click.IntRange(0),
        default=1,
        show_default=True,
        help="Processes that build batches.",
    ),
    click.option(
        "--photos/--no-photos",
        default=True,
        show_default=True,
        help="Also train on the Debian mate-backgrounds photographs (apt-get install mate-backgrounds).",
    ),
)
# How the pipeline fills the detector's marks (and how an inpainter trained on a detector's holes
# meets them): grown by --grow pixels, only those narrower than --max-width.
_HOLES = _options(
    click.option(
        "--grow",
        type=click.IntRange(0),
        default=2,
        show_default=True,
        help="Pixels the fill reaches past the mask.",
    ),
    click.option(
        "--max-width",
        type=click.IntRange(0),
        default=0,
        show_default=True,
        help="Fill only marks narrower than this many pixels (0: all): broad ones are left for a curator's mask.",
    ),
)
_RUN = _options(
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--device", default="auto", show_default=True),
)


def _share(flag: str, default: float, help: str):
    """An option taking a share or a probability, 0 to 1."""
    return click.option(flag, type=click.FloatRange(0, 1), default=default, show_default=True, help=help)


def _at_least(flag: str, low: float, default: float, help: str):
    """An option taking a number of at least ``low``."""
    return click.option(flag, type=click.FloatRange(low), default=default, show_default=True, help=help)


def _checkpoint(flag: str, help: str, required: bool = True):
    """An option naming a checkpoint folder that must exist."""
    return click.option(
        flag, type=click.Path(exists=True, file_okay=False), required=required, default=None, help=help
    )


@click.command("stage")
@click.option("--stage", type=click.Choice(["detect", "inpaint", "denoise"]), required=True)
@_OUT
@click.option(
    "--architecture",
    default=None,
    help="Default: damage_detector (detect), gated_inpainter (inpaint), unet_restorer (denoise).",
)
@click.option(
    "--arch-config", default="{}", show_default=True, help="JSON keyword arguments of the architecture."
)
@click.option("--steps", type=click.IntRange(1), default=8000, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=8, show_default=True)
@click.option("--crop", type=click.IntRange(32), default=128, show_default=True)
@_LEARNING
@click.option("--name", default="restore-pipeline", show_default=True)
@click.option("--version", default="v1-stage", show_default=True)
@_checkpoint(
    "--init-from",
    "Fine-tune this checkpoint's stage (a stage checkpoint, or a pipeline such as restore-unet v7).",
    required=False,
)
@_checkpoint(
    "--hard-negatives",
    "detect (or inpaint with sees_under): a checkpoint whose detector is run over the clean training "
    "photographs; crops are centred where it marks them (every such mark is a false one).",
    required=False,
)
@_share(
    "--focus",
    0.4,
    "With --hard-negatives: the share of crops centred on one.",
)
@_at_least(
    "--zoom",
    1,
    2.0,
    "detect, denoise, inpaint: training crops zoom out up to this many times (a region that "
    "much larger, downsampled): whole scenes at the size a scanned print shows them.",
)
@_checkpoint(
    "--detector",
    "inpaint, with --arch-config '{\"sees_under\": true}': a checkpoint whose detector's holes over "
    "the damaged pictures are filled too, false ones included (where it must keep the picture).",
    required=False,
)
@_HOLES
@_at_least(
    "--keep-weight",
    0,
    0.0,
    "inpaint, with '{\"sees_under\": true}': extra L1 where its holes cover picture the damage "
    "left (a crack's rim, a false mark), which its keep head should give back.",
)
@click.option(
    "--vary-grow",
    is_flag=True,
    help="inpaint: grow each picture's holes by its own 0 to --grow pixels, so that a keep head "
    "cannot take a hole's edge for intact picture by where it lies.",
)
@click.option(
    "--probabilities",
    default="{}",
    show_default=True,
    help="JSON: effect probabilities to change in the stage's mixture, e.g. '{\"losses\": 0.15}' "
    "(detect: its damage and look of old prints; inpaint: its holes; denoise: its noise and blur).",
)
@_RUN
def train_stage(
    stage: str,
    out_dir: str,
    architecture: str | None,
    arch_config: str,
    steps: int,
    batch: int,
    crop: int,
    lr: float,
    workers: int,
    photos: bool,
    name: str,
    version: str,
    init_from: str | None,
    hard_negatives: str | None,
    focus: float,
    zoom: float,
    detector: str | None,
    grow: int,
    max_width: int,
    keep_weight: float,
    vary_grow: bool,
    probabilities: str,
    seed: int,
    device: str,
) -> None:
    """Train one stage of the staged restorer (detect, inpaint or denoise) on synthetic realistic
    damage (the ``train-stage`` flow, which a deployment can schedule on the GPU pool). denoise
    learns grain, noise, blur and JPEG alone, a third of its crops left as they are (the target its
    own input: texture kept). With --photos, the photographs of plasma-workspace-wallpapers and
    lomiri-wallpapers-16.04 are added where installed."""
    config = json.loads(arch_config)
    changed = json.loads(probabilities)
    if not isinstance(changed, dict) or not all(isinstance(v, int | float) for v in changed.values()):
        raise click.UsageError(
            '--probabilities: a JSON object of effect names and numbers, e.g. {"losses": 0.15}'
        )
    from restoration.degrade.pipeline import DegradationConfig

    try:
        DegradationConfig({k: float(v) for k, v in changed.items()})
    except ValueError as exc:  # an effect the degradation model does not have
        raise click.UsageError(f"--probabilities: {exc}") from None
    under = stage == "inpaint" and isinstance(config, dict) and bool(config.get("sees_under"))
    if hard_negatives and not (stage == "detect" or under):
        raise click.UsageError(
            "--hard-negatives is for --stage detect, or inpaint with '{\"sees_under\": true}'"
        )
    if detector and not under:
        raise click.UsageError(
            "--detector is for --stage inpaint with --arch-config '{\"sees_under\": true}'"
        )
    if keep_weight and not under:
        raise click.UsageError(
            "--keep-weight is for --stage inpaint with --arch-config '{\"sees_under\": true}'"
        )
    if vary_grow and stage != "inpaint":
        raise click.UsageError("--vary-grow is for --stage inpaint")
    _train(
        stage=stage,
        init_from=init_from,
        hard_negatives=hard_negatives,
        focus=focus,
        zoom=zoom,
        detector=detector,
        grow=grow,
        max_width=max_width,
        keep_weight=keep_weight,
        vary_grow=vary_grow,
        probabilities=changed,
        out=out_dir,
        architecture=architecture,
        arch_config=config,
        steps=steps,
        batch=batch,
        crop=crop,
        lr=lr,
        workers=workers,
        photos=photos,
        name=name,
        version=version,
        seed=seed,
        device=device,
    )


def _train(stage: str, **kwargs) -> None:
    import sys

    from restoration import photos as debian

    if kwargs["photos"] and not debian.available():
        raise click.UsageError(
            f"--photos: {debian.ROOT} lacks the mate-backgrounds photographs "
            "(apt-get install mate-backgrounds), or pass --no-photos"
        )
    from flows.train import train_stage as train_stage_flow

    result = train_stage_flow(
        stage=stage, command="archive " + " ".join(sys.argv[1:]), log=err.print, **kwargs
    )
    out.print(
        table(
            f"{stage} stage: validation",
            ["metric", "value"],
            [[k, f"{v:.4f}"] for k, v in result["metrics"].items()],
        )
    )
    out.print(f"wrote {result['checkpoint']} (sha256 {result['weights_sha256'][:16]}…) and card.json")


@click.command("upscale")
@click.option("--scale", type=click.Choice(["2", "4"]), default="2", show_default=True)
@_OUT
@click.option(
    "--architecture",
    type=click.Choice(list(ENLARGERS)),
    default="srvgg_compact",
    show_default=True,
)
@click.option(
    "--arch-config",
    default=None,
    help="JSON keyword arguments of the architecture (default: srvgg_compact "
    '{"num_feat": 32, "num_conv": 12}; rrdbnet {"num_feat": 32, "num_block": 3, "num_grow_ch": 16}).',
)
@click.option("--steps", type=click.IntRange(1), default=7000, show_default=True)
@click.option(
    "--warmup-steps",
    type=click.IntRange(0),
    default=5800,
    show_default=True,
    help="Steps on L1 + SSIM alone before the discriminator joins.",
)
@click.option(
    "--adv-weight",
    type=click.FloatRange(0),
    default=0.005,
    show_default=True,
    help="The adversarial loss's weight after warm-up (0: no discriminator).",
)
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True)
@click.option(
    "--degradation",
    type=click.Choice(["scans", "real-esrgan"]),  # restoration.degrade.enlarge.PRESETS (loads torch)
    default="scans",
    show_default=True,
    help="How the small copies are made: as small scans of prints are (scans: noise and JPEG measured "
    "on real scans) or with Real-ESRGAN's ranges, made for photographs from the web.",
)
@click.option(
    "--crop",
    type=click.IntRange(32),
    default=96,
    show_default=True,
    help="The large crop (the model sees crop/scale).",
)
@_LEARNING
@click.option("--name", default=None, help="Default: enlarge-xSCALE.")
@click.option("--version", default="v1", show_default=True)
@_RUN
def train_upscale(
    scale: str,
    out_dir: str,
    architecture: str,
    arch_config: str | None,
    name: str | None,
    crop: int,
    degradation: str,
    **kwargs,
) -> None:
    """Train an enlarger (super-resolution by 2 or 4), SRGAN-style: L1 + SSIM, then against a
    PatchGAN, on clean photographs made small as small scans are (blur, resizing, noise, film grain,
    JPEG, sometimes twice over; ``--degradation`` picks the strengths), seeded and resumable; the
    card records the recipe."""
    from flows.train import enlarger_config
    from restoration.degrade.enlarge import PRESETS

    if crop % int(scale):
        raise click.UsageError(f"--crop {crop} must be a multiple of --scale {scale}")
    config = enlarger_config(architecture, json.loads(arch_config) if arch_config else None, int(scale))
    _train(
        stage="upscale",
        out=out_dir,
        architecture=architecture,
        arch_config=config,
        name=name or f"enlarge-x{scale}",
        scale=int(scale),
        crop=crop,
        disc_config={"ndf": 32},
        enlarge=PRESETS[degradation],
        **kwargs,
    )


# How a model version's weights are stored (save_checkpoint's storage).
_STORAGE = click.option(
    "--storage",
    type=click.Choice(["float32", "float16"]),
    default="float32",
    show_default=True,
    help="How the weights are stored: float16 halves the file (each weight rounded once, recorded "
    "in the card; the stages' digests are of the stored tensors).",
)


@click.command("pipeline")
@_checkpoint("--detect", "The detect stage's checkpoint, or a pipeline's (its detect stage is taken).")
@_checkpoint("--inpaint", "The inpaint stage's checkpoint, or a pipeline's (its inpaint stage is taken).")
@_checkpoint(
    "--denoise",
    "A unet_restorer checkpoint for the denoise stage, or a pipeline's (none: no denoising).",
    required=False,
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--name", default="restore-pipeline", show_default=True)
@click.option("--version", required=True)
@_share("--threshold", 0.5, "Damage probability filled.")
@_HOLES
@_share(
    "--broad-threshold",
    0.0,
    "With --max-width: a broad mark the detector is this sure of (a lost corner, a flake of "
    "emulsion) is filled after all; 0: broad marks are left for a curator's mask. Above --threshold.",
)
@_share(
    "--keep-below",
    0.0,
    "An inpainter with a keep head looks under a hole only where the detector is less sure than "
    "this; where it is surer (and round that, by --grow) it fills as for a curator's mask, so that "
    "the half-lit edges of real cracks are not kept. 0: it looks under every hole. Above --threshold.",
)
@click.option(
    "--views",
    type=click.Choice([str(v) for v in VIEWS]),
    default="1",
    show_default=True,
    help="The detector's views, their logits averaged: the picture, mirrored, upside down (3), "
    "both (4), and the same of its transpose (8); each costs one more detector pass.",
)
@_share(
    "--denoise-strength",
    1.0,
    "How far the denoise stage takes the picture (0.5: half way from the filled picture to its "
    "output): grain and a print's own texture are kept in proportion.",
)
@_STORAGE
def train_pipeline(
    detect: str,
    inpaint: str,
    denoise: str | None,
    out_dir: str,
    name: str,
    version: str,
    threshold: float,
    grow: int,
    max_width: int,
    broad_threshold: float,
    keep_below: float,
    views: str,
    denoise_strength: float,
    storage: str,
) -> None:
    """Assemble stage checkpoints into one restore model version (each stage's digest in its card)."""
    from flows.versions import code_version
    from restoration.stages import assemble

    dirs = {"detect": Path(detect), "inpaint": Path(inpaint)} | (
        {"denoise": Path(denoise)} if denoise else {}
    )
    try:
        card = assemble(
            dirs,
            Path(out_dir),
            {"name": name, "version": version, "code_version": code_version()},
            storage=storage,
            threshold=threshold,
            grow=grow,
            max_width=max_width,
            views=int(views),
            **({"broad_threshold": broad_threshold} if broad_threshold else {}),
            **({"keep_below": keep_below} if keep_below else {}),
            **({"denoise_strength": denoise_strength} if denoise else {}),
        )
    except ValueError as exc:  # a pipeline named for a stage it does not have, settings that clash
        raise click.ClickException(str(exc)) from None
    out.print(
        f"wrote {Path(out_dir) / card['weights']} (sha256 {card['weights_sha256'][:16]}…): "
        + ", ".join(f"{k} {v['architecture']}" for k, v in card["stages"].items())
    )


@click.command("toned")
@_checkpoint("--restorer", "A restorer's checkpoint (restore-unet, a staged pipeline).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--name", default="restore-unet", show_default=True)
@click.option("--version", required=True)
@click.option(
    "--estimator",
    type=click.Choice(["classical", "learned"]),
    default="learned",
    show_default=True,
    help="learned: a small network trained here on aged clean photographs, kept off light subjects by "
    "the classical guard (measured better, see restore-unet v8's card); classical: quantile rules alone.",
)
@click.option(
    "--neutral-blend",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="learned: how far tone=neutral's estimate moves towards the classical one (0: the learned "
    "estimate alone; the average measured better than either alone, see restore-unet v9's card).",
)
@click.option(
    "--steps", type=click.IntRange(1), default=2500, show_default=True, help="learned: training steps."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--state",
    type=click.Path(dir_okay=False),
    default=None,
    help="learned: a resumable training state (saved as it goes; resumed if it exists).",
)
@click.option("--photos/--no-photos", default=True, show_default=True, help="Also train on mate-backgrounds.")
@_checkpoint(
    "--tone-from",
    "Take the tone stage (estimator, its weights and card, neutral blend) of this toned restorer "
    "instead of training one: a new restorer behind the same tone stage.",
    required=False,
)
@_STORAGE
def train_toned(
    restorer: str,
    out_dir: str,
    name: str,
    version: str,
    estimator: str,
    neutral_blend: float,
    steps: int,
    seed: int,
    state: str | None,
    photos: bool,
    tone_from: str | None,
    storage: str,
) -> None:
    """Put the tone stage (fading, casts, toning: fitted per picture) before a restorer, as one
    model version that takes tone=auto|neutral|off and strength=0..1; with the learned estimator,
    train it first (held-out photographs never seen), or take it from another (--tone-from)."""
    import sys

    from flows.versions import code_version
    from restoration.stages import with_tone

    net, tone_card = None, {}
    if tone_from:
        estimator, net, neutral_blend, tone_card = _tone_of(Path(tone_from))
    elif estimator == "learned":
        net, tone_card = _train_tone_net(steps, seed, Path(state) if state else None, photos)
        tone_card["command"] = "archive " + " ".join(sys.argv[1:])
    card = with_tone(
        Path(restorer),
        Path(out_dir),
        {"name": name, "version": version, "code_version": code_version()},
        estimator,
        net,
        tone_card,
        neutral_blend if estimator == "learned" else 0.0,
        storage=storage,
    )
    restorer_from = card["stages"]["restorer"]["from"]
    out.print(
        f"wrote {Path(out_dir) / card['weights']} (sha256 {card['weights_sha256'][:16]}…): tone ({estimator}), "
        f"then {restorer_from.get('name')}@{restorer_from.get('version')}"
    )


def _tone_of(toned: Path):
    """A toned restorer's tone stage: (estimator, its network or None, neutral blend, its card,
    noting where it was taken from); its digests checked by loading."""
    from restoration.checkpoints import load_checkpoint

    model, card = load_checkpoint(toned)
    if card["architecture"] != "toned_restorer":
        raise click.UsageError(f"--tone-from {toned}: a {card['architecture']}, not a toned restorer")
    stage = dict(card["tone_stage"])
    taken = {
        "taken_from": {
            "model": f"{card.get('name')}@{card.get('version')}",
            "weights_sha256": card["weights_sha256"],
        }
    }
    return stage["estimator"], model.estimator, stage.get("neutral_blend", 0.0), stage | taken


def _train_tone_net(steps: int, seed: int, state: Path | None, photos: bool):
    from dataclasses import asdict

    from restoration import photos as debian
    from restoration.data import TRAIN_IMAGES, VALIDATION_IMAGES, bundled_images, data_card
    from restoration.degrade.pipeline import DegradationConfig
    from restoration.tone_training import ToneTrainConfig, train

    if photos and not debian.available():
        raise click.UsageError(
            f"--photos: {debian.ROOT} lacks the mate-backgrounds photographs, or pass --no-photos"
        )
    plasma = photos and debian.PLASMA.available()  # KDE's photographs too, where installed
    images = bundled_images(TRAIN_IMAGES) | (debian.load(debian.TRAIN) if photos else {})
    images |= debian.PLASMA.load() if plasma else {}
    config = ToneTrainConfig(steps=steps, seed=seed)
    net, history = train(images, config, state, log=err.print)
    aging = DegradationConfig(config.degradation, untouched=config.untouched)
    return net, {
        "training": asdict(config) | {"degradation_sha256": aging.digest()},
        "data": data_card(images, bundled_images(VALIDATION_IMAGES))
        | {
            "photographs": (debian.card_entries(debian.TRAIN) if photos else [])
            + (debian.PLASMA.card_entries() if plasma else []),
            "held_out": list(debian.HELD_OUT),
        },
        "history": history[-20:],
    }


def register(cli: click.Group) -> None:
    for command in (train_stage, train_upscale, train_pipeline, train_toned):
        cli.commands["train"].add_command(command)
