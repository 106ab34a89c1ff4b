"""`archive export-bag`: items, their versions and their history as a BagIt bag."""

from __future__ import annotations

from pathlib import Path

import click

from flows.settings import Settings


@click.command("export-bag")
@click.option("--collection", "-c", help="Every item of this collection.")
@click.option("--item", "items", type=int, multiple=True, help="This item (repeat for more).")
@click.option("--run", "run_id", type=int, help="The items a run touched (see `archive runs`).")
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="The bag's folder (must not exist)."
)
@click.option("--masters", is_flag=True, help="Include the masters (they can be large).")
@click.option(
    "--versions",
    type=click.Choice(["current", "all"]),
    default="current",
    show_default=True,
    help="Each kind's current version, or every version.",
)
@click.option(
    "--iiif-base",
    metavar="URL",
    help="The web catalogue's URL: each item also gets its IIIF manifest, pointing to its image services.",
)
@click.pass_obj
def export_bag(
    settings: Settings,
    collection: str | None,
    items: tuple[int, ...],
    run_id: int | None,
    out: Path,
    masters: bool,
    versions: str,
    iiif_base: str | None,
) -> int:
    """Write a BagIt bag (sha256 manifests): each item's catalogue record, its events (PREMIS) and
    its versions' files and sidecars, checked against their recorded sha256 on the way; exit 1 if
    any file had to be left out."""
    from flows.db import ensure_schema
    from flows.export import export_bag as export

    ensure_schema(settings.db.url, create=False)
    summary = export(settings, out, collection, list(items) or None, run_id, masters, versions, iiif_base)
    for line in summary.failed:  # one line each, never wrapped: a script reads them
        click.echo(f"left out: {line}", err=True)
    click.echo(summary.headline(), err=bool(summary.failed))
    return 1 if summary.failed else 0


def register(cli: click.Group) -> None:
    cli.add_command(export_bag)
