"""`archive db`, `collections`, `show`: the catalogue as it stands."""

from __future__ import annotations

from typing import Any

import click

from flows.cli.console import err, out, print_json, table
from flows.settings import Settings


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


def register(cli: click.Group) -> None:
    for command in (
        db,
        collections,
        show,
    ):
        cli.add_command(command)
