"""``archive export-bag``: a collection, some items or a run's items as a BagIt bag (RFC 8493), the
way archives move collections between systems (Archivematica, Islandora, Samvera take bags).

    <out>/bagit.txt bag-info.txt manifest-sha256.txt tagmanifest-sha256.txt
    <out>/data/<collection>/<item id>/
        item.json              the catalogue's record (descriptive, technical, EXIF, versions)
        events.json            the item's events, PREMIS 3 semantic units in JSON
        manifest.json          its IIIF Presentation 3.0 manifest, with --iiif-base (the catalogue's
                               URL, which the manifest's image services point to)
        master/<file>          the master, with --masters
        <kind>/v<N>/<files>    each current version (or all, with --versions all): image, access
                               copy, mask, metadata.json sidecar, as written

Files are streamed from the stores to the bag's folder one at a time (memory holds a chunk, a page
of items and one item's record), and each is checked against the sha256 the catalogue or the
version's sidecar recorded as it is copied: a file that no longer matches is left out and counted,
and the export exits non-zero. The bag is built in ``<out>.partial`` and renamed to ``<out>`` only
once bagit has written its manifests, so a bag at ``<out>`` is always whole; an existing ``<out>`` is
never written over.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archive_db import queries
from archive_db.derivatives import item_derivatives
from archive_db.web.views import item_view
from flows.db import collection_named, sessions_for
from flows.errors import ArchiveError, ConfigError
from flows.settings import Settings
from flows.storage.layout import split_storage_uri
from flows.storage.store import cached_store
from flows.versions import code_version

CHUNK = 1 << 20
PAGE = 200  # items read from the catalogue at a time


class FixityError(ArchiveError):
    """A stored file no longer matches the sha256 recorded for it."""


@dataclass
class BagSummary:
    out: Path
    items: int = 0
    files: int = 0
    bytes: int = 0
    failed: list[str] = field(default_factory=list)  # "what: why", one per file left out

    def headline(self) -> str:
        head = f"Bag {self.out}: {self.items} items, {self.files} files, {self.bytes:,} bytes"
        return head + (f"; {len(self.failed)} files left out (see above)" if self.failed else "; valid")


def safe_name(part: str) -> str:
    """A kind or a key's last part as a folder or file name every system accepts."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in part).strip(".")
    return cleaned or "file"


def premis_event(e: dict[str, Any]) -> dict[str, Any]:
    """One catalogue event (``curation.event_dict``) as PREMIS 3 semantic units."""
    linking = [
        {"linkingObjectIdentifierType": "local", "linkingObjectIdentifierValue": f"item:{e['item_id']}"}
    ]
    if e["derivative_id"]:
        linking.append(
            {
                "linkingObjectIdentifierType": "local",
                "linkingObjectIdentifierValue": f"derivative:{e['derivative_id']}",
            }
        )
    return {
        "eventIdentifier": {"eventIdentifierType": "local", "eventIdentifierValue": f"event:{e['id']}"},
        "eventType": e["type"],
        "eventDateTime": e["at"],
        "eventDetailInformation": {
            "eventDetail": json.dumps(e["detail"], sort_keys=True) if e["detail"] else ""
        },
        "eventOutcomeInformation": {"eventOutcome": e["outcome"]},
        "linkingAgentIdentifier": {
            "linkingAgentIdentifierType": e["agent_kind"],
            "linkingAgentIdentifierValue": e["agent"],
        },
        "linkingObjectIdentifier": linking,
    }


class _Copier:
    """Streams stored files into the bag, checking each against its recorded sha256."""

    def __init__(self, settings: Settings, summary: BagSummary):
        self.settings, self.summary = settings, summary

    def copy(self, uri: str, key: str, target: Path, sha256: str | None) -> bool:
        store = cached_store(uri, self.settings.store, self.settings.restore.threads)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        try:
            with store.open(key) as src, open(target, "wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
            if sha256 is not None and digest.hexdigest() != sha256:
                raise FixityError(f"sha256 {digest.hexdigest()[:16]}… is not the recorded {sha256[:16]}…")
        except Exception as exc:
            target.unlink(missing_ok=True)
            self.summary.failed.append(
                f"{uri}/{key}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
            return False
        self.summary.files += 1
        self.summary.bytes += size
        return True


def export_bag(
    settings: Settings,
    out: Path,
    collection: str | None = None,
    item_ids: list[int] | None = None,
    run_id: int | None = None,
    masters: bool = False,
    versions: str = "current",
    iiif_base: str | None = None,
) -> BagSummary:
    """Write the bag; see the module docstring."""
    import bagit

    if versions not in ("current", "all"):
        raise ConfigError(f"versions must be current or all, not {versions!r}")
    if sum(x is not None for x in (collection, item_ids, run_id)) != 1:
        raise ConfigError("give one of --collection, --item or --run")
    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} already exists: an export never writes over it (choose a new folder)")
    if not out.parent.is_dir():
        raise ConfigError(f"{out.parent} is not a folder")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a killed export's: never a bag
    partial.mkdir()
    summary = BagSummary(out)
    copier = _Copier(settings, summary)
    sessions = sessions_for(settings.db.url)
    with sessions() as session:
        scope: dict[str, Any] = {"item_ids": item_ids, "run_id": run_id}
        if collection is not None:
            scope["collection_id"] = collection_named(session, collection).id
        after = 0
        while page := queries.export_page(session, after_id=after, limit=PAGE, **scope):
            for item in page:
                _export_item(session, item, partial, copier, masters, versions, iiif_base)
                summary.items += 1
            after = page[-1].id
            session.expunge_all()  # memory holds one page
    if summary.items == 0:
        shutil.rmtree(partial)
        raise ConfigError("nothing to export: no items match")
    info = {
        "Source-Organization": "photo-archive",
        "Bagging-Date": datetime.now(UTC).date().isoformat(),
        "External-Description": f"photo-archive export of {_scope_text(collection, item_ids, run_id)}",
        "Bag-Software-Agent": f"photo-archive {code_version()} (bagit {bagit.VERSION})",
        "Payload-Items": str(summary.items),
        "Export-Versions": versions,
        "Export-Masters": "yes" if masters else "no",
        "Export-IIIF-Base": iiif_base or "none",
    }
    bagit.make_bag(str(partial), info, processes=1, checksums=["sha256"])
    partial.rename(out)
    return summary


def _scope_text(collection: str | None, item_ids: list[int] | None, run_id: int | None) -> str:
    if collection is not None:
        return f"collection {collection}"
    if run_id is not None:
        return f"the items of run {run_id}"
    return f"items {', '.join(map(str, item_ids or []))}"


def _export_item(
    session, item, root: Path, copier: _Copier, masters: bool, versions: str, iiif_base: str | None
) -> None:
    base = root / safe_name(item.collection.name) / str(item.id)
    base.mkdir(parents=True, exist_ok=True)
    record = item_view(session, item)
    (base / "item.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    events = [premis_event(e) for e in record["events"]]
    (base / "events.json").write_text(
        json.dumps({"premis:version": "3.0", "events": events}, indent=2) + "\n"
    )
    if iiif_base and item.status != "quarantined":
        from archive_db.web.iiif import manifest

        iiif = manifest(iiif_base.rstrip("/"), record, versions)
        (base / "manifest.json").write_text(json.dumps(iiif, indent=2) + "\n")
    if masters:
        name = safe_name(item.source_key.rsplit("/", 1)[-1])
        copier.copy(item.source_uri, item.source_key, base / "master" / name, item.sha256)
    for d in item_derivatives(session, item.id):
        if versions == "current" and not d.is_current:
            continue
        _export_version(d, base / safe_name(d.kind) / f"v{d.version}", copier)


def _export_version(d, target: Path, copier: _Copier) -> None:
    """Every file of one version, as its sidecar lists them (sha256 each), and the sidecar."""
    store_uri, image_key = split_storage_uri(d.storage_uri)
    prefix = image_key.rpartition("/")[0]
    sidecar = prefix + "/metadata.json"
    if not copier.copy(store_uri, sidecar, target / "metadata.json", None):
        return
    listed = json.loads((target / "metadata.json").read_text())["derivative"]["files"]
    for name, entry in sorted(listed.items()):
        copier.copy(store_uri, f"{prefix}/{name}", target / safe_name(name), entry["sha256"])
