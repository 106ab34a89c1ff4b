"""`archive ingest`, `audit`, `restore`, `reprocess`, `promote`, `rollback`: the flows a
digitisation team runs. Flow modules are imported inside commands (Prefect is slow to load)."""

from __future__ import annotations

import click

from flows.cli.console import RichReporter, key_values, out, print_outcome, summary_table
from flows.settings import Settings

PARAM_HELP = (
    "tone=auto|neutral|off (a model with the tone stage: fix fading keeping hue; also remove casts and "
    "toning; leave tone alone), strength=0..1 (the restoration's blend over the input). Repeatable."
)


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
@click.option("--param", "param_values", multiple=True, metavar="KEY=VALUE", help=PARAM_HELP)
@click.pass_obj
def restore(
    settings: Settings,
    collection: str,
    model_ref: str,
    pool: str | None,
    batch_pixels: int | None,
    param_values: tuple[str, ...],
) -> int:
    """Restore the items of a collection that lack the model's output (with these parameters), as
    new versions: other parameters make other versions, as any recipe change does."""
    from flows.ingest import check_collection_name
    from flows.progress import reporting
    from flows.restore import KIND, preflight, prepare, restore_collection

    check_collection_name(collection)
    params = key_values(param_values)
    prepare(settings, collection, model_ref, KIND, params)  # a bad name or value: one line, before Prefect
    preflight(settings, in_process=pool is None)
    if batch_pixels:
        settings.restore = settings.restore.model_copy(update={"batch_pixels": batch_pixels})
    with RichReporter() as bar, reporting(bar):
        summary = restore_collection(collection, model_ref, pool, settings=settings, params=params)
    return print_outcome(f"restore: {collection}", summary)


@click.command()
@click.option("--collection", "-c", required=True)
@click.option(
    "--model",
    "model_ref",
    help="The new version, name@version (with --scale: the enlarger; default production).",
)
@click.option("--style", help="Restyle instead: the style (a preset, or learned:NAME@VERSION[:STYLE]).")
@click.option(
    "--scale",
    type=click.Choice(["2", "4"]),
    default=None,
    help="Enlarge again instead: the stale enlargements of this factor (made by an older enlarger, or "
    "from a version that is no longer current).",
)
@click.option("--strength", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="With --style.")
@click.option(
    "--from",
    "source",
    type=click.Choice(["restored", "master"]),
    default="restored",
    show_default=True,
    help="With --style or --scale: what is styled or enlarged.",
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
    scale: str | None,
    strength: float,
    source: str,
    pool: str | None,
    sample: int,
) -> int:
    """Restore the stale items again with a newer model (or restyle the stale styled versions, or
    enlarge the stale enlargements again), beside the old versions, and compare."""
    from flows.progress import reporting
    from flows.reprocess import reprocess_collection
    from flows.restore import KIND, preflight, prepare

    if scale is not None and style is not None:
        raise click.UsageError("give one of --style and --scale")
    if scale is None and (model_ref is None) == (style is None):
        raise click.UsageError("give one of --model, --style and --scale")
    if scale is not None:
        from flows.upscale import prepare as prepare_upscale

        _, row, _ = prepare_upscale(settings, collection, int(scale), source, model_ref)
        model_ref = f"{row.name}@{row.version}"
    elif style is not None:
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
            scale=int(scale) if scale else None,
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
@click.option("--model", "model_ref", help="NAME@VERSION (restored versions; an enlarger's: enlargements).")
@click.option("--style", help="Or a style's versions: a preset, or learned:NAME@VERSION[:STYLE].")
@click.pass_obj
def promote(settings: Settings, collection: str, model_ref: str | None, style: str | None) -> None:
    """Make the versions NAME@VERSION made the current ones (an event per item)."""
    _move_current(settings, "promote", collection, model_ref, style)


@click.command("rollback")
@click.option("--collection", "-c", required=True)
@click.option("--model", "model_ref", help="NAME@VERSION (restored versions; an enlarger's: enlargements).")
@click.option("--style", help="Or a style's versions: a preset, or learned:NAME@VERSION[:STYLE].")
@click.pass_obj
def rollback(settings: Settings, collection: str, model_ref: str | None, style: str | None) -> None:
    """Make current again the versions NAME@VERSION's replaced (an event per item)."""
    _move_current(settings, "rollback", collection, model_ref, style)


def register(cli: click.Group) -> None:
    for command in (
        ingest,
        audit,
        restore,
        reprocess,
        promote,
        rollback,
    ):
        cli.add_command(command)
