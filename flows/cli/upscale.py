"""Enlargement commands: ``upscale`` (a collection, as versions) and ``upscale-files``."""

from __future__ import annotations

from pathlib import Path

import click

from flows.cli.console import RichReporter, each_file, err, print_outcome
from flows.cli.styles import from_option
from flows.settings import Settings

_SCALE = click.option("--scale", type=click.Choice(["2", "4"]), default="2", show_default=True)
_MODEL = click.option(
    "--model",
    "model_ref",
    default=None,
    help="NAME@VERSION of an enlarger (default: the production one of that scale).",
)


@click.command()
@click.option("--collection", "-c", required=True)
@_SCALE
@from_option("Enlarge")
@_MODEL
@click.option("--limit", type=click.IntRange(1), help="At most this many items (in catalogue order).")
@click.option(
    "--pool", help="Send batches to the restore-batch deployment on this work pool (default: in-process)."
)
@click.pass_obj
def upscale(
    settings: Settings,
    collection: str,
    scale: str,
    source: str,
    model_ref: str | None,
    limit: int | None,
    pool: str | None,
) -> int:
    """Enlarge a collection's items 2 or 4 times, as new versions of kind upscaled:xN (DPI scaled,
    so they print at the original's size; disclosed as AI-enlarged)."""
    from flows.progress import reporting
    from flows.restore import preflight
    from flows.upscale import prepare, upscale_collection

    prepare(settings, collection, int(scale), source, model_ref)  # bad names: one line, before Prefect
    preflight(settings, in_process=pool is None)
    with RichReporter() as bar, reporting(bar):
        summary = upscale_collection(
            collection, int(scale), source, model_ref, limit, pool, settings=settings
        )
    hint = f"have no current {source} version to enlarge (restore them first, or use --from master)"
    return print_outcome(f"upscale: {collection}", summary, hint)


@click.command("upscale-files")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the results."
)
@_SCALE
@_MODEL
@click.option("--device", default="auto", show_default=True)
@click.option("--tile", type=click.IntRange(64), default=768, show_default=True, help="Largest tile side.")
@click.pass_obj
def upscale_files(
    settings: Settings,
    inputs: tuple[str, ...],
    out_dir: str,
    scale: str,
    model_ref: str | None,
    device: str,
    tile: int,
) -> int:
    """Enlarge image files directly, without a catalogue: names, modes, bit depth and ICC kept, the
    DPI scaled. Each result gets <name>.recipe.json: the model, its weights' sha256 and the scale."""
    import hashlib
    import json

    from flows.db import sessions_for
    from flows.imaging.io import read_image, write_image
    from flows.model_versions import load, ready
    from flows.upscale import enlarger_for
    from restoration.engine import EngineConfig, Restorer, check_device

    try:
        dev = check_device(device)
    except ValueError as exc:
        raise click.UsageError(f"--device: {exc}") from None
    ready(settings)
    with sessions_for(settings.db.url)() as session:
        row = enlarger_for(session, int(scale), model_ref)
        ref = f"{row.name}@{row.version}"
    model, card, row = load(settings, ref, device=str(dev))
    engine = Restorer(model, EngineConfig(tile=tile, device=str(dev)))
    target = Path(out_dir)
    err.print(f"enlarging x{scale} with {ref} on {dev}")

    def one(path: Path) -> Path:
        data = path.read_bytes()  # read once: decoded and hashed
        loaded = read_image(data)
        write_image(target / path.name, engine.restore([loaded.pixels])[0].image, loaded, scale=int(scale))
        recipe = {
            "operation": "upscale",
            "model": ref,
            "weights_sha256": row.weights_sha256,
            "scale": int(scale),
            "input": path.name,
            "input_sha256": hashlib.sha256(data).hexdigest(),
        }
        (target / f"{path.stem}.recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        return target / path.name

    return each_file(inputs, f"enlarged x{scale}", one)


def register(cli: click.Group) -> None:
    for command in (upscale, upscale_files):
        cli.add_command(command)
