"""Descriptive metadata from the digitisation team's spreadsheet (CSV) onto catalogue items.

A row is matched to an item by its source key (``source_key``, ``key`` or ``filename``) or by
an ``identifier`` (item id or sha256). Empty cells leave a field as it is. Rows that match no
item, and columns this does not know, are reported; the whole file is checked before anything
is written, so a malformed manifest changes nothing. Each changed item gets one
``metadata modification`` event with the old and new values; importing the same file again
changes nothing and records nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from archive_db.curation import update_metadata
from archive_db.ledger import get_or_create_agent
from archive_db.models import Item
from archive_db.queries import collection_by_name, duplicates_by_key, find_item, items_by_key
from flows.db import ensure_schema, sessions_for
from flows.errors import ConfigError, NotFound
from flows.settings import Settings
from flows.versions import code_version

KEY_COLUMNS = ("source_key", "key", "filename", "identifier")
# Manifest column -> item field; common spreadsheet names for the same thing are accepted.
FIELD_COLUMNS = {
    "title": "title",
    "description": "description",
    "caption": "description",
    "date": "date_text",
    "date_text": "date_text",
    "creator": "creator",
    "photographer": "creator",
    "place": "place",
    "location": "place",
    "subjects": "subjects",
    "subject": "subjects",
    "keywords": "subjects",
    "rights": "rights",
}


class ManifestError(ConfigError):
    """The manifest cannot be read as a whole; nothing was imported."""


@dataclass
class ImportSummary:
    rows: int = 0
    matched: int = 0
    changed: int = 0
    unchanged: int = 0
    unmatched: list[tuple[int, str]] = field(default_factory=list)  # (line, key)
    unknown_columns: list[str] = field(default_factory=list)
    repeated: list[tuple[int, str]] = field(default_factory=list)  # a later row for an item already set

    def headline(self) -> str:
        return (
            f"{self.rows} rows: {self.changed} items changed, {self.unchanged} unchanged, "
            f"{len(self.unmatched)} unmatched, {len(self.repeated)} repeated"
        )


def _column(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def read_manifest(data: bytes, source: str) -> tuple[str, list[str], list[tuple[int, dict[str, str]]]]:
    """(key column, unknown columns, [(line, row)]); raises ManifestError on a malformed file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{source}: not UTF-8 text (byte {exc.start}); save the sheet as CSV UTF-8"
        ) from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = [_column(c) for c in next(reader)]
    except StopIteration:
        raise ManifestError(f"{source}: the manifest is empty") from None
    except csv.Error as exc:
        raise ManifestError(f"{source}: {exc}") from None
    keys = [c for c in KEY_COLUMNS if c in header]
    if not keys:
        raise ManifestError(f"{source}: no key column; name one of {', '.join(KEY_COLUMNS)}")
    if len(set(header)) != len(header):
        raise ManifestError(f"{source}: repeated column names in the header")
    unknown = [c for c in header if c not in FIELD_COLUMNS and c not in KEY_COLUMNS]
    rows = []
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue  # blank lines between blocks are common in hand-kept sheets
            if len(values) != len(header):
                raise ManifestError(
                    f"{source}: line {reader.line_num} has {len(values)} fields, the header {len(header)}"
                )
            rows.append((reader.line_num, dict(zip(header, values, strict=True))))
    except csv.Error as exc:
        raise ManifestError(f"{source}: line {reader.line_num}: {exc}") from None
    return keys[0], unknown, rows


def import_metadata(
    settings: Settings, path: Path, collection: str, user: str | None = None, strict: bool = False
) -> ImportSummary:
    """Apply a manifest to a collection's items, in one transaction (none at all, with ``strict``,
    if any row matches no item)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    key_column, unknown, rows = read_manifest(data, path.name)
    summary = ImportSummary(rows=len(rows), unknown_columns=unknown)
    ensure_schema(settings.db.url, create=False)
    source = {
        "source": "manifest",
        "manifest": path.name,
        "manifest_sha256": hashlib.sha256(data).hexdigest(),
    }
    with sessions_for(settings.db.url)() as session, session.begin():
        coll = collection_by_name(session, collection)
        if coll is None:
            raise NotFound(f"no collection named {collection!r}")
        agent = (
            get_or_create_agent(session, "person", user)
            if user
            else get_or_create_agent(session, "software", "archive import-metadata", code_version())
        )
        keys = [r[key_column].strip() for _, r in rows]
        by_key = items_by_key(session, coll.id, keys) if key_column != "identifier" else {}
        if key_column != "identifier":  # a duplicate's key names the same bytes: its item
            by_key |= {
                k: d.item for k, d in duplicates_by_key(session, coll.id, keys).items() if k not in by_key
            }
        seen: dict[int, int] = {}
        for line, row in rows:
            ref = row[key_column].strip()
            item = by_key.get(ref) if key_column != "identifier" else _by_identifier(session, coll.id, ref)
            if item is None:
                summary.unmatched.append((line, ref))
                continue
            if item.id in seen:
                summary.repeated.append((line, ref))
                continue
            seen[item.id] = line
            summary.matched += 1
            values = {}
            for column, value in row.items():
                if column in FIELD_COLUMNS and value.strip():
                    values[FIELD_COLUMNS[column]] = value
            changed = update_metadata(session, item, values, agent, source | {"line": line})
            summary.changed += bool(changed)
            summary.unchanged += not changed
        if strict and summary.unmatched:
            line, key = summary.unmatched[0]
            raise ManifestError(
                f"{path.name}: line {line}: no item with key {key!r} in {collection} "
                f"({len(summary.unmatched)} unmatched rows); nothing was imported"
            )
    return summary


def _by_identifier(session, collection_id: int, ref: str) -> Item | None:
    item = find_item(session, ref)
    return item if item is not None and item.collection_id == collection_id else None
