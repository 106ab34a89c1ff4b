"""Curators' commands: ``search``, ``lineage``, ``events``, ``import-metadata`` and ``serve``."""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import click

from flows.cli.console import err, out, print_json, table
from flows.settings import Settings


def _session(settings: Settings):
    from flows.db import ensure_schema, sessions_for

    ensure_schema(settings.db.url, create=False)
    return sessions_for(settings.db.url)()


def _years(value: str | None) -> tuple[int | None, int | None]:
    from archive_db.dates import parse_year_range

    if not value:
        return None, None
    try:
        return parse_year_range(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--date") from None


@click.command()
@click.argument("text", required=False)
@click.option("--collection", "-c", help="Only this collection.")
@click.option(
    "--date",
    "dates",
    metavar="RANGE",
    help="Date range the photograph may fall in: 1920..1929, 1920s, ..1950.",
)
@click.option("--status", type=click.Choice(["ingested", "quarantined", "restored", "styled", "stale"]))
@click.option(
    "--model", "model_ref", metavar="NAME@VERSION", help="Made (current version) by this model version."
)
@click.option("--kind", help="Has a current derivative of this kind (restored, style:albumen …).")
@click.option("--sort", type=click.Choice(["id", "newest", "date", "key"]), default="id", show_default=True)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--after", metavar="CURSOR", help="The cursor printed under the previous page.")
@click.option(
    "--facets/--no-facets",
    default=True,
    show_default=True,
    help="Counts per collection, decade, status, model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (hits, facets, next cursor).")
@click.option("--csv", "as_csv", is_flag=True, help="Print the hits as CSV.")
@click.pass_obj
def search(
    settings: Settings,
    text: str | None,
    collection: str | None,
    dates: str | None,
    status: str | None,
    model_ref: str | None,
    kind: str | None,
    sort: str,
    limit: int,
    after: str | None,
    facets: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Find items by what they show (TEXT: title, description, subjects, place, creator, key,
    camera) and by collection, date, status, model version and derivative kind."""
    from archive_db.search import SearchError, SearchQuery
    from archive_db.search import search as run_search

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    year_from, year_to = _years(dates)
    try:
        query = SearchQuery(
            text=text,
            collection=collection,
            year_from=year_from,
            year_to=year_to,
            status=status,
            model=model_ref,
            kind=kind,
            sort=sort,
            limit=limit,
            after=after,
        )
        with _session(settings) as session:
            page = run_search(session, query, with_facets=facets and not as_csv)
    except SearchError as exc:
        raise click.UsageError(str(exc)) from None
    hits = [asdict(h) for h in page.hits]
    if as_json:
        print_json(
            {
                "query": query.filters(),
                "total": page.total,
                "estimate": page.estimate,
                "hits": hits,
                "facets": {k: [{"value": v, "count": n} for v, n in vs] for k, vs in page.facets.items()},
                "next_cursor": page.next_cursor,
            }
        )
        return
    if as_csv:
        columns = list(hits[0]) if hits else [f for f in SEARCH_COLUMNS]
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(hits)
        return
    rows = [
        [
            h["id"],
            h["collection"],
            h["source_key"],
            h["title"],
            h["date_text"],
            h["status"] + (", restored" if h["restored"] else "") + (", styled" if h["styled"] else ""),
        ]
        for h in hits
    ]
    title = f"{page.total} items" if page.total is not None else f"{len(hits)} items"
    if page.estimate:
        title = f"about {title} (estimated, within {page.estimate:.0%} at 95% confidence)"
    out.print(table(title, ["id", "collection", "key", "title", "date", "status"], rows))
    for name, values in page.facets.items():
        if values:
            out.print(f"{name}: " + ", ".join(f"{v} ({n})" for v, n in values), markup=False, highlight=False)
    if page.next_cursor:
        out.print(f"next page: --after {page.next_cursor}", markup=False, highlight=False)


SEARCH_COLUMNS = (
    "id",
    "collection",
    "source_key",
    "title",
    "date_text",
    "creator",
    "place",
    "status",
    "width",
    "height",
    "thumbnail_key",
    "sha256",
    "restored",
    "styled",
)


def _find(session, ref: str):
    from archive_db.queries import find_item
    from flows.errors import NotFound

    item = find_item(session, ref)
    if item is None:
        raise NotFound(f"no item matches {ref!r} (give an id, a sha256 prefix or COLLECTION/KEY)")
    return item


@click.command()
@click.argument("item")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def lineage(settings: Settings, item: str, as_json: bool) -> None:
    """Show ITEM's master and every derivative version under its parent, with recipes, models
    and events, as a tree."""
    from rich.markup import escape
    from rich.tree import Tree

    from archive_db.curation import lineage as item_lineage

    with _session(settings) as session:
        tree = item_lineage(session, _find(session, item))
    if as_json:
        print_json(tree)
        return

    def label(node: dict) -> str:
        if node["type"] == "master":
            return f"[bold]master[/] {escape(node['source_key'])}  sha256 {node['sha256'][:16]}…  ({node['status']})"
        flags = ", ".join(f for f in ("current" if node["current"] else "", node["review"] or "") if f)
        return (
            f"[bold]{escape(node['kind'])} v{node['version']}[/]{f' ({flags})' if flags else ''}  "
            f"model {escape(node['model'] or '-')}  recipe {node['recipe_hash'][:12]}  sha256 {node['sha256'][:16]}…"
        )

    def grow(branch: Tree, node: dict) -> None:
        for e in node["events"]:
            branch.add(
                f"[dim]{e['at'][:19].replace('T', ' ')} {escape(e['type'])} ({e['outcome']}) by {escape(e['agent'])}[/]"
            )
        for child in node["children"]:
            grow(branch.add(label(child)), child)

    root = Tree(label(tree))
    grow(root, tree)
    out.print(root)


@click.command()
@click.option(
    "--since",
    default="1d",
    show_default=True,
    metavar="WHEN",
    help="An ISO date/time (2026-11-01, 2026-11-01T09:00) or an age: 30m, 12h, 7d.",
)
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable).")
@click.option("--collection", "-c")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def events(
    settings: Settings, since: str, types: tuple[str, ...], collection: str | None, limit: int, as_json: bool
) -> None:
    """List recorded events (newest last) since a time."""
    from archive_db.curation import event_dict
    from archive_db.queries import events_since

    when = parse_since(since)
    with _session(settings) as session:
        data = [event_dict(e) for e in events_since(session, when, list(types), collection, limit)]
    if as_json:
        print_json(data)
        return
    out.print(
        table(
            f"{len(data)} events since {when:%Y-%m-%d %H:%M} UTC",
            ["time (UTC)", "type", "outcome", "item", "agent"],
            [
                [d["at"][:19].replace("T", " "), d["type"], d["outcome"], d["item_id"], d["agent"]]
                for d in data
            ],
        )
    )


def parse_since(value: str) -> datetime:
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if value[:-1].isdigit() and value[-1:] in units:
        return datetime.now(UTC) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an ISO date/time nor an age like 7d", param_hint="--since"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.command("import-metadata")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--collection", "-c", required=True)
@click.option("--user", help="Record the changes as this person's (default: the import software).")
@click.option("--strict", is_flag=True, help="Import nothing (exit 1) if any row matches no item.")
@click.pass_obj
def import_metadata(
    settings: Settings, manifest: str, collection: str, user: str | None, strict: bool
) -> None:
    """Set titles, descriptions, dates, creators, places, subjects and rights from a CSV
    manifest, matching rows to items by source key (source_key, key or filename column) or
    identifier (item id or sha256). Empty cells leave a field as it is; unmatched rows and
    unknown columns are reported."""
    from pathlib import Path

    from flows.manifest import import_metadata as run_import

    summary = run_import(settings, Path(manifest), collection, user, strict)
    if summary.unknown_columns:
        err.print(
            f"ignored unknown columns: {', '.join(summary.unknown_columns)}", markup=False, highlight=False
        )
    for line, key in summary.unmatched:
        err.print(f"line {line}: no item with key {key!r} in {collection}", markup=False, highlight=False)
    for line, key in summary.repeated:
        err.print(
            f"line {line}: {key!r} was already set by an earlier row; skipped", markup=False, highlight=False
        )
    out.print(summary.headline(), markup=False, highlight=False)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.pass_obj
def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the web catalogue (read-only unless ARCHIVE_WEB__TOKEN is set)."""
    try:
        import uvicorn

        from archive_db.web.app import create_app
    except ImportError as exc:
        raise click.ClickException(
            f"the web catalogue needs the 'web' extra ({exc.name} is missing): "
            "pip install 'photo-archive[web]'"
        ) from None
    from flows.db import ensure_schema, sessions_for
    from flows.media import StoreMasks, StoreMedia

    ensure_schema(settings.db.url, create=False)
    token = settings.web.token.get_secret_value() if settings.web.token else None
    app = create_app(
        sessions_for(settings.db.url),
        StoreMedia(settings),
        token,
        settings.web.preview_px,
        masks=StoreMasks(settings),
    )
    mode = (
        "writes need the token"
        if settings.web.token
        else "read-only (set ARCHIVE_WEB__TOKEN to allow writes)"
    )
    err.print(f"serving the catalogue on http://{host}:{port}/ — {mode}", markup=False, highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@click.command()
@click.argument("item")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--user", help="Who drew it (recorded as the event's agent).")
@click.pass_obj
def mask(settings: Settings, item: str, file: str, user: str | None) -> None:
    """Give ITEM (id, sha256 prefix or COLLECTION/KEY) a corrected damage mask: FILE, the master's
    size as stored, white where it is damaged. The next `archive restore` with a staged model
    restores the item again with it (a new version; its recipe names the mask's sha256)."""
    from pathlib import Path

    from flows.masks import store_mask

    row = store_mask(settings, item, Path(file), user)
    out.print(
        f"mask v{row.version} of item {row.item_id} is current (sha256 {row.sha256[:16]}…, "
        f"{row.recipe['marked']:.2%} marked)",
        markup=False,
    )


def register(cli: click.Group) -> None:
    for command in (search, lineage, events, import_metadata, serve, mask):
        cli.add_command(command)
