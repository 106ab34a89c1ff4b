"""`archive models` (the registry of model versions) and `archive train restore` (the `train`
group, which the stage and style modules extend)."""

from __future__ import annotations

import click

from flows.cli.console import err, out, print_json, table
from flows.settings import Settings
from restoration.recipe import ENLARGERS, TrainConfig

_TRAIN_DEFAULTS = TrainConfig()  # restoration.recipe loads no torch


@click.group()
def train() -> None:
    """Train models (on synthetic degradations of bundled clean images)."""


@train.command("restore")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Where model.safetensors and card.json go.",
)
@click.option("--name", default="restore-unet", show_default=True)
@click.option("--version", "version", default="v1", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=4000, show_default=True)
@click.option(
    "--warmup-steps",
    type=click.IntRange(0),
    default=1200,
    show_default=True,
    help="Steps on reconstruction and mask losses alone, before the discriminator joins.",
)
@click.option("--batch", type=click.IntRange(1), default=8, show_default=True)
@click.option("--crop", type=click.IntRange(32), default=96, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=1e-3, show_default=True)
@click.option("--adv-weight", type=click.FloatRange(0), default=_TRAIN_DEFAULTS.adv_weight, show_default=True)
@click.option(
    "--ssim-weight", type=click.FloatRange(0), default=_TRAIN_DEFAULTS.ssim_weight, show_default=True
)
@click.option(
    "--hole-weight",
    type=click.FloatRange(0),
    default=_TRAIN_DEFAULTS.hole_weight,
    show_default=True,
    help="Extra L1 weight inside the damage mask (inpainting of cracks and tears).",
)
@click.option(
    "--untouched",
    type=click.FloatRange(0, 1),
    default=_TRAIN_DEFAULTS.untouched,
    show_default=True,
    help="Share of training crops left undamaged (teaches the model to do no harm).",
)
@click.option(
    "--augment/--no-augment",
    default=True,
    show_default=True,
    help="Zoom out and shuffle colour channels of the training crops (more scenes from few photographs).",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Fine-tune: start from this checkpoint directory's weights (same architecture).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(0),
    default=1,
    show_default=True,
    help="Processes that build batches (the same batches as in-process), so a GPU is not kept waiting.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N")
@click.option("--fresh", is_flag=True, help="Ignore a saved training state and start over.")
def train_restore(
    out_dir: str,
    name: str,
    version: str,
    steps: int,
    warmup_steps: int,
    batch: int,
    crop: int,
    lr: float,
    adv_weight: float,
    ssim_weight: float,
    hole_weight: float,
    untouched: float,
    augment: bool,
    init_from: str | None,
    seed: int,
    workers: int,
    device: str,
    fresh: bool,
) -> None:
    """Train the U-Net restorer as a GAN; resumable (state kept in OUT.training/)."""
    import sys
    import time
    from pathlib import Path

    import torch

    from flows.versions import code_version, software_versions
    from restoration.data import TRAIN_IMAGES, VALIDATION_IMAGES, bundled_images, data_card
    from restoration.engine import resolve_device
    from restoration.training import Trainer, export

    dev = resolve_device(device)
    train_set, val_set = bundled_images(TRAIN_IMAGES), bundled_images(VALIDATION_IMAGES)
    config = TrainConfig(
        steps=steps,
        warmup_steps=min(warmup_steps, steps),
        batch=batch,
        crop=crop,
        lr=lr,
        adv_weight=adv_weight,
        ssim_weight=ssim_weight,
        hole_weight=hole_weight,
        untouched=untouched,
        augment=augment,
        seed=seed,
        workers=workers,
    )
    started = time.monotonic()
    trainer = Trainer(
        config, list(train_set.values()), list(val_set.values()), device=str(dev), log=err.print
    )
    parent = None
    if init_from:
        from restoration.checkpoints import load_checkpoint

        model, parent_card = load_checkpoint(Path(init_from))  # verifies the card's sha256
        if (parent_card["architecture"], parent_card["config"]) != (config.architecture, config.arch_config):
            raise click.UsageError(
                f"--init-from {init_from}: a {parent_card['architecture']} "
                f"{parent_card['config']}, not {config.architecture} {config.arch_config}"
            )
        trainer.init_from(model)
        parent = {k: parent_card.get(k) for k in ("name", "version", "weights_sha256")}
    target = Path(out_dir)
    how = {
        "command": "archive " + " ".join(sys.argv[1:]),
        "threads": torch.get_num_threads(),
        "device": str(dev),
    }
    trainer.run(target.with_name(target.name + ".training"), resume=not fresh, session=how)
    err.print("final validation (with the classical baseline) ...")
    metrics = trainer.validate(with_baseline=True)
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
            "init_from": parent,
            "data": {
                **data_card(train_set, val_set),
            },
        },
    )
    out.print(
        table(
            f"{name} {version}: validation",
            ["metric", "value"],
            [[k, f"{v:.4f}"] for k, v in metrics.items()],
        )
    )
    out.print(f"wrote {target / card['weights']} (sha256 {card['weights_sha256'][:16]}…) and card.json")


@click.group()
def models() -> None:
    """List, register, promote and retire model versions."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_list(settings: Settings, as_json: bool) -> None:
    """Model versions in the catalogue (the shipped ones are registered on first use)."""
    from archive_db.queries import model_versions
    from flows.db import sessions_for
    from flows.model_versions import ready

    ready(settings)
    with sessions_for(settings.db.url)() as session:
        rows = model_versions(session)
        data = [
            {
                "name": m.name,
                "version": m.version,
                "task": m.task,
                "status": m.status,
                "architecture": m.architecture,
                "weights_sha256": m.weights_sha256,
                "metrics": m.metrics or {},
            }
            for m in rows
        ]
    if as_json:
        print_json(data)
        return
    cols = ["name", "version", "task", "status", "architecture", "sha256", "model PSNR", "input PSNR"]
    out.print(
        table(
            "model versions",
            cols,
            [
                [
                    d["name"],
                    d["version"],
                    d["task"],
                    d["status"],
                    d["architecture"],
                    d["weights_sha256"][:12],
                    _metric(d, "model_psnr"),
                    _metric(d, "input_psnr"),
                ]
                for d in data
            ],
        )
    )


def _metric(d: dict, key: str) -> str:
    value = d["metrics"].get(key)
    return "" if value is None else f"{value:.2f}"


@models.command("register")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--promote", is_flag=True, help="Make it the production version at once.")
@click.pass_obj
def models_register(settings: Settings, directory: str, promote: bool) -> None:
    """Register a checkpoint folder (model.safetensors + card.json) after checking its digest."""
    from pathlib import Path

    from flows.model_versions import register

    row = register(settings, Path(directory), status="production" if promote else "candidate")
    out.print(f"registered {row.name}@{row.version} ({row.task}, {row.status}) at {row.weights_uri}")


@models.command("import")
@click.argument("weights", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--architecture",
    type=click.Choice(list(ENLARGERS)),
    required=True,
    help="SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3) or RRDBNet (RealESRGAN_x4plus, x2plus).",
)
@click.option(
    "--arch-config",
    default="{}",
    show_default=True,
    help='Its keyword arguments, e.g. {"num_conv": 32, "upscale": 4} or {"scale": 2}.',
)
@click.option("--name", required=True)
@click.option("--version", required=True)
@click.option("--promote", is_flag=True, help="Make it the production version at once.")
@click.pass_obj
def models_import(
    settings: Settings,
    weights: str,
    architecture: str,
    arch_config: str,
    name: str,
    version: str,
    promote: bool,
) -> None:
    """Register your own checkpoint of a supported architecture (a Real-ESRGAN .pth or .safetensors),
    loaded strictly and stored as safetensors with its original's sha256 in the card."""
    import json
    from pathlib import Path

    from flows.model_versions import import_weights

    try:
        config = json.loads(arch_config)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--arch-config is not JSON: {exc}") from None
    row = import_weights(
        settings,
        Path(weights),
        architecture,
        config,
        name,
        version,
        status="production" if promote else "candidate",
    )
    out.print(f"registered {row.name}@{row.version} ({row.task}, {row.status}) at {row.weights_uri}")


@models.command("promote")
@click.argument("ref")
@click.pass_obj
def models_promote(settings: Settings, ref: str) -> None:
    """Make NAME@VERSION the production version of its model."""
    _set_status(settings, ref, "production")


@models.command("retire")
@click.argument("ref")
@click.pass_obj
def models_retire(settings: Settings, ref: str) -> None:
    """Retire NAME@VERSION: kept and readable, never chosen by @production."""
    _set_status(settings, ref, "retired")


def _set_status(settings: Settings, ref: str, status: str) -> None:
    from flows.model_versions import set_status

    row = set_status(settings, ref, status)
    out.print(f"{row.name}@{row.version} is now {status} ({row.task})")


def register(cli: click.Group) -> None:
    for command in (
        train,
        models,
    ):
        cli.add_command(command)
