"""Sub-commands of ``archive``. Flow modules are imported inside commands (Prefect is slow to load)."""

from __future__ import annotations

from typing import Any

import click

from flows.cli.console import RichReporter, each_file, err, out, print_json, summary_table, table
from flows.settings import Settings
from restoration.recipe import TrainConfig


@click.group()
def db() -> None:
    """Manage the catalogue database."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(settings: Settings) -> None:
    """Apply the catalogue migrations (creates the catalogue if it is new)."""
    from archive_db.migrate import current_revision, head_revision, upgrade
    from flows.db import engine_for

    engine = engine_for(settings.db.url)
    try:
        upgrade(engine)
    except Exception as exc:
        raise click.ClickException(f"cannot upgrade {engine.url!r}: {str(exc).splitlines()[0]}") from None
    out.print(f"catalogue {engine.url!r} is at revision {current_revision(engine)} (head {head_revision()})")


@click.command()
@click.argument("source")
@click.option("--collection", "-c", required=True, help="Collection to catalogue the scans into.")
@click.option("--batch-size", type=click.IntRange(1, 5000), help="Files per Prefect task.")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Files fetched at once.")
@click.pass_obj
def ingest(
    settings: Settings, source: str, collection: str, batch_size: int | None, concurrency: int | None
) -> int:
    """Catalogue the scans under SOURCE (a folder, file://… or s3://bucket/prefix)."""
    from flows.ingest import check_collection_name, ingest_collection
    from flows.progress import reporting
    from flows.storage.store import open_store

    check_collection_name(collection)
    # Fail fast, before the Prefect engine starts, when the source cannot be reached.
    open_store(source, settings.store).probe()
    updates = {k: v for k, v in {"batch_size": batch_size, "concurrency": concurrency}.items() if v}
    settings.ingest = settings.ingest.model_copy(update=updates)
    with RichReporter() as bar, reporting(bar):
        summary = ingest_collection(source, collection, settings)
    out.print(summary_table(f"ingest: {collection}", summary.rows()))
    for key, kind, reason in summary.problems[:50]:
        out.print(f"  {kind:<11} {key}: {reason}", markup=False, highlight=False)
    if len(summary.problems) > 50:
        out.print(f"  … and {len(summary.problems) - 50} more (see the run's artifact or `archive show`)")
    out.print(summary.headline(), markup=False, highlight=False)
    return 1 if summary.errors else 0


@click.command()
@click.option("--collection", "-c", required=True)
@click.pass_obj
def audit(settings: Settings, collection: str) -> int:
    """Re-read every master and recorded derivative file, compare sha256 with the catalogue, list
    unrecorded version folders; exit 1 if anything fails."""
    from flows.audit import fixity_audit
    from flows.progress import reporting

    with RichReporter() as bar, reporting(bar):
        summary = fixity_audit(collection, settings)
    out.print(summary_table(f"fixity audit: {collection}", summary.rows()))
    for c in summary.failures:
        out.print(
            f"  {c.status:<8} item {c.item_id} {c.key}: {c.error or c.found}", markup=False, highlight=False
        )
    out.print(summary.headline(), markup=False, highlight=False)
    return 1 if summary.failed else 0


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def collections(settings: Settings, as_json: bool) -> None:
    """List the collections in the catalogue."""
    from archive_db.queries import collection_summaries
    from flows.db import ensure_schema, sessions_for

    ensure_schema(settings.db.url, create=False)
    with sessions_for(settings.db.url)() as session:
        rows = collection_summaries(session)
    if as_json:
        print_json([r.__dict__ for r in rows])
        return
    cols = ["collection", "items", "ingested", "quarantined", "duplicates", "bytes", "created"]
    data = [
        [r.name, r.items, r.ingested, r.quarantined, r.duplicates, f"{r.bytes:,}", f"{r.created_at:%Y-%m-%d}"]
        for r in rows
    ]
    out.print(table("collections", cols, data))
    if not rows:
        err.print("the catalogue has no collections yet: run `archive ingest SOURCE --collection NAME`")


@click.command()
@click.argument("item")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_obj
def show(settings: Settings, item: str, as_json: bool) -> None:
    """Show one item: ITEM is its id, its sha256 (or 8+ leading hex digits), or COLLECTION/KEY."""
    from archive_db.derivatives import item_derivatives
    from archive_db.queries import find_item, item_events
    from flows.db import ensure_schema, sessions_for
    from flows.errors import NotFound

    ensure_schema(settings.db.url, create=False)
    with sessions_for(settings.db.url)() as session:
        found = find_item(session, item)
        if found is None:
            raise NotFound(f"no item matches {item!r} (give an id, a sha256 prefix or COLLECTION/KEY)")
        data = item_dict(found)
        data["duplicates"] = [{"key": d.source_key, "etag": d.etag} for d in found.duplicates]
        data["events"] = [
            {
                "type": e.type,
                "time": e.occurred_at.isoformat(),
                "outcome": e.outcome,
                "agent": f"{e.agent.name} {e.agent.version}".strip(),
                "detail": e.detail,
            }
            for e in item_events(session, found.id)
        ]
        data["derivatives"] = [
            {
                "kind": d.kind,
                "version": d.version,
                "current": d.is_current,
                "uri": d.storage_uri,
                "sha256": d.sha256,
                "model": (d.recipe or {}).get("model"),
                "created_at": d.created_at.isoformat(),
            }
            for d in item_derivatives(session, found.id)
        ]
    if as_json:
        print_json(data)
        return
    scalar = [[k, v] for k, v in data.items() if not isinstance(v, dict | list)]
    out.print(table(f"item {data['id']}", ["field", "value"], scalar))
    if data["exif"]:
        out.print(table("EXIF", ["tag", "value"], [[k, v] for k, v in sorted(data["exif"].items())]))
    if data["duplicates"]:
        out.print(
            table(
                "same bytes also under", ["key", "etag"], [[d["key"], d["etag"]] for d in data["duplicates"]]
            )
        )
    if data["derivatives"]:
        out.print(
            table(
                "versions",
                ["kind", "version", "current", "model", "sha256", "uri"],
                [
                    [
                        d["kind"],
                        f"v{d['version']}",
                        "yes" if d["current"] else "",
                        d["model"],
                        d["sha256"][:16] + "…",
                        d["uri"],
                    ]
                    for d in data["derivatives"]
                ],
            )
        )
    rows = [
        [e["time"][:19].replace("T", " "), e["type"], e["outcome"], e["agent"], _short(e["detail"])]
        for e in data["events"]
    ]
    out.print(table("events", ["time (UTC)", "type", "outcome", "agent", "detail"], rows))


def item_dict(item) -> dict[str, Any]:
    from sqlalchemy import inspect

    data = {c.key: getattr(item, c.key) for c in inspect(item).mapper.column_attrs}
    data["collection"] = item.collection.name
    data["created_at"] = item.created_at.isoformat()
    return data


def _short(detail: dict | None) -> str:
    if not detail:
        return ""
    return ", ".join(f"{k}={v}" for k, v in detail.items() if v is not None)[:200]


@click.command()
@click.option("--collection", "-c", required=True)
@click.option(
    "--model",
    "model_ref",
    default="restore@production",
    show_default=True,
    help="name@version, or restore@production.",
)
@click.option(
    "--pool", help="Send batches to the restore-batch deployment on this work pool (default: in-process)."
)
@click.option("--batch-pixels", type=click.IntRange(1), help="Pixels per batch.")
@click.pass_obj
def restore(
    settings: Settings, collection: str, model_ref: str, pool: str | None, batch_pixels: int | None
) -> int:
    """Restore the items of a collection that lack the model's output, as new versions."""
    from flows.ingest import check_collection_name
    from flows.progress import reporting
    from flows.restore import KIND, preflight, prepare, restore_collection

    check_collection_name(collection)
    prepare(
        settings, collection, model_ref, KIND
    )  # unknown collection or model: one line, before Prefect starts
    preflight(settings, in_process=pool is None)
    if batch_pixels:
        settings.restore = settings.restore.model_copy(update={"batch_pixels": batch_pixels})
    with RichReporter() as bar, reporting(bar):
        summary = restore_collection(collection, model_ref, pool, settings=settings)
    out.print(summary_table(f"restore: {collection}", summary.rows()))
    for key, reason in summary.problems[:50]:
        out.print(f"  failed {key}: {reason}", markup=False, highlight=False)
    out.print(summary.headline(), markup=False, highlight=False)
    return 1 if summary.failed or summary.not_done else 0


@click.command()
@click.option("--collection", "-c", required=True)
@click.option("--model", "model_ref", help="The new version, name@version.")
@click.option("--style", help="Restyle instead: the style (a preset, or learned:NAME@VERSION[:STYLE]).")
@click.option("--strength", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="With --style.")
@click.option(
    "--from",
    "source",
    type=click.Choice(["restored", "master"]),
    default="restored",
    show_default=True,
    help="With --style: what the style is applied to.",
)
@click.option("--pool", help="Send batches to the restore-batch deployment on this work pool.")
@click.option(
    "--sample", type=click.IntRange(0, 100), default=6, show_default=True, help="Items on the contact sheet."
)
@click.pass_obj
def reprocess(
    settings: Settings,
    collection: str,
    model_ref: str | None,
    style: str | None,
    strength: float,
    source: str,
    pool: str | None,
    sample: int,
) -> int:
    """Restore the stale items again with a newer model (or restyle the stale styled versions),
    beside the old versions, and compare."""
    from flows.progress import reporting
    from flows.reprocess import reprocess_collection
    from flows.restore import KIND, preflight, prepare

    if (model_ref is None) == (style is None):
        raise click.UsageError("give one of --model and --style")
    if style is not None:
        from flows.stylize import prepare as prepare_style

        _, row, _ = prepare_style(settings, collection, style, strength, source)
        model_ref = f"{row.name}@{row.version}"
    else:
        prepare(settings, collection, model_ref, KIND)
    preflight(settings, in_process=pool is None)

    with RichReporter() as bar, reporting(bar):
        report = reprocess_collection(
            collection,
            model_ref,
            pool,
            sample=sample,
            settings=settings,
            style=style,
            strength=strength,
            source=source,
        )
    out.print(summary_table(f"reprocess: {collection}", report.summary.rows()))
    for c in sorted(report.changes, key=lambda c: -c.mean_abs_change)[:10]:
        out.print(
            f"  item {c.item_id} {c.key}: v{c.previous_version} -> v{c.new_version}, "
            f"mean abs change {c.mean_abs_change:.4f}",
            markup=False,
            highlight=False,
        )
    out.print(report.headline(), markup=False, highlight=False)
    if report.changes:
        how = f"--style {style}" if style else f"--model {model_ref}"
        out.print(
            f"make them current with: archive promote --collection {collection} {how}",
            markup=False,
            highlight=False,
        )
    return 1 if report.summary.failed or report.summary.not_done else 0


def _move_current(
    settings: Settings, name: str, collection: str, model_ref: str | None, style: str | None
) -> None:
    from flows import reprocess
    from flows.restore import KIND

    if (model_ref is None) == (style is None):
        raise click.UsageError("give one of --model and --style")
    kind = KIND
    if style is not None:
        from flows.stylize import prepare as prepare_style

        _, row, recipe = prepare_style(settings, collection, style)
        model_ref, kind = f"{row.name}@{row.version}", recipe.kind
    move = reprocess.promote if name == "promote" else reprocess.rollback
    moved = move(settings, collection, model_ref, kind)
    out.print(f"{name}: {moved} item(s) of '{collection}' changed their current version", markup=False)


@click.command("promote")
@click.option("--collection", "-c", required=True)
@click.option("--model", "model_ref", help="NAME@VERSION (restored versions).")
@click.option("--style", help="Or a style's versions: a preset, or learned:NAME@VERSION[:STYLE].")
@click.pass_obj
def promote(settings: Settings, collection: str, model_ref: str | None, style: str | None) -> None:
    """Make the versions NAME@VERSION made the current ones (an event per item)."""
    _move_current(settings, "promote", collection, model_ref, style)


@click.command("rollback")
@click.option("--collection", "-c", required=True)
@click.option("--model", "model_ref", help="NAME@VERSION (restored versions).")
@click.option("--style", help="Or a style's versions: a preset, or learned:NAME@VERSION[:STYLE].")
@click.pass_obj
def rollback(settings: Settings, collection: str, model_ref: str | None, style: str | None) -> None:
    """Make current again the versions NAME@VERSION's replaced (an event per item)."""
    _move_current(settings, "rollback", collection, model_ref, style)


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
    from restoration.data import TRAIN_IMAGES, VALIDATION_IMAGES, bundled_images, digest
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
                "train": sorted(train_set),
                "train_digest": digest(train_set),
                "validation": sorted(val_set),
                "validation_digest": digest(val_set),
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


@click.command("restore-files")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the results."
)
@click.option("--model", "model_ref", default="restore@production", show_default=True)
@click.option("--masks", is_flag=True, help="Also write <name>.mask.png (the damage mask used).")
@click.option(
    "--mask-dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Curators' own masks: <name>.mask.png or <name>.png here (white = damaged) is used "
    "instead of the detector's; needs a staged model.",
)
@click.option("--device", default="auto", show_default=True)
@click.option("--tile", type=click.IntRange(64), default=768, show_default=True, help="Largest tile side.")
@click.pass_obj
def restore_files(
    settings: Settings,
    inputs: tuple[str, ...],
    out_dir: str,
    model_ref: str,
    masks: bool,
    mask_dir: str | None,
    device: str,
    tile: int,
) -> int:
    """Restore image files directly, without a catalogue; names, sizes, modes and bit depth kept.
    Each result gets <name>.recipe.json: the model, its weights' sha256 and the mask supplied, if any."""
    import json
    from pathlib import Path

    from flows.imaging.io import read_image, read_mask, save_mask, write_image
    from flows.model_versions import load, ready
    from restoration.checkpoints import sha256_file
    from restoration.decode import gpu_jpeg_available
    from restoration.engine import EngineConfig, Restorer, check_device, takes_mask

    try:
        dev = check_device(device)
    except ValueError as exc:
        raise click.UsageError(f"--device: {exc}") from None
    gpu = dev if gpu_jpeg_available(dev) else None  # JPEGs decode on the GPU where they can
    ready(settings)
    model, card, row = load(settings, model_ref, device=str(dev))
    if mask_dir and not takes_mask(model):
        raise click.UsageError(
            f"--mask-dir: {row.name}@{row.version} has no inpainting stage to use a supplied mask"
        )
    engine = Restorer(model, EngineConfig(tile=tile, device=str(dev)))
    target = Path(out_dir)
    err.print(
        f"restoring with {row.name}@{row.version} on {dev}" + (" (JPEG decode on the GPU)" if gpu else "")
    )

    def one(path: Path) -> Path:
        supplied = (
            next(
                (
                    c
                    for c in (Path(mask_dir) / f"{path.stem}.mask.png", Path(mask_dir) / f"{path.stem}.png")
                    if c.is_file()
                ),
                None,
            )
            if mask_dir
            else None
        )
        loaded = read_image(path, gpu)
        result = engine.restore([loaded.pixels], masks=[read_mask(supplied)] if supplied else None)[0]
        write_image(target / path.name, result.image, loaded)
        if masks:
            save_mask(target / f"{path.stem}.mask.png", result.mask)
        recipe = {
            "model": f"{row.name}@{row.version}",
            "weights_sha256": row.weights_sha256,
            "input": path.name,
            "supplied_mask": {"file": supplied.name, "sha256": sha256_file(supplied)} if supplied else None,
        }
        (target / f"{path.stem}.recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        return target / path.name

    return each_file(inputs, "restored", one)


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``archive`` group (and the ``train`` group, which the
    stage and style modules extend)."""
    for command in (
        db,
        ingest,
        audit,
        collections,
        show,
        restore,
        reprocess,
        promote,
        rollback,
        train,
        models,
        restore_files,
    ):
        cli.add_command(command)
