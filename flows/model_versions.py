"""The model registry: checkpoints in the output store (models/<name>/<version>/) and rows in
the catalogue's model_versions table, with their weights' sha256 checked on every load."""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path

from archive_db import ledger, queries
from archive_db.engine import write_first
from archive_db.models import ModelVersion
from flows.db import ensure_schema, sessions_for, writing
from flows.errors import ConfigError, NotFound
from flows.settings import Settings
from flows.storage.layout import model_prefix
from flows.storage.store import open_store, read_all
from restoration.checkpoints import CARD, WEIGHTS

SHIPPED = Path(__file__).resolve().parents[1] / "restoration" / "weights"
log = logging.getLogger(__name__)


def register(settings: Settings, directory: Path, status: str = "candidate") -> ModelVersion:
    """Copy a checkpoint folder into the output store and record it; refuses a bad digest."""
    from restoration.checkpoints import ChecksumError, load_checkpoint

    try:
        _, card = load_checkpoint(directory)  # rebuilds the architecture and checks the digest
    except ChecksumError as exc:
        raise ConfigError(str(exc)) from None
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{directory} is not a usable checkpoint: {exc}") from None
    name, version = card.get("name"), card.get("version")
    if not name or not version:
        raise ConfigError(f"{directory / CARD} must give the model's name and version")
    ensure_schema(settings.db.url)
    output = open_store(settings.store.output, settings.store, create=True)
    prefix = model_prefix(name, version)
    with sessions_for(settings.db.url).begin() as session:
        write_first(session)
        if queries.resolve_model(session, f"{name}@{version}") is not None:
            raise ConfigError(f"{name}@{version} is already registered; versions are immutable")
        for filename in (WEIGHTS, CARD):
            with open(directory / filename, "rb") as fh:
                output.put(f"{prefix}/{filename}", fh)
        row = ModelVersion(
            name=name,
            version=version,
            task=card.get("task", "restore"),
            architecture=card["architecture"],
            config=card["config"],
            weights_uri=f"{output.uri}/{prefix}/{WEIGHTS}",
            weights_sha256=card["weights_sha256"],
            metrics=card.get("metrics"),
            status=status,
        )
        session.add(row)
        if status == "production":
            _demote_others(session, row)
        session.flush()
        session.expunge(row)
        return row


def import_weights(
    settings: Settings,
    weights: Path,
    architecture: str,
    arch_config: dict,
    name: str,
    version: str,
    status: str = "candidate",
) -> ModelVersion:
    """Register a user's checkpoint of a supported architecture (e.g. Real-ESRGAN's published
    ``.pth``, weights under ``params_ema`` or ``params``, read tensors-only): loaded strictly, so a
    layout that does not fit is refused, then written as safetensors with a card that records the
    original file's name and sha256. The importable architectures are the enlargers; the card's
    config names the scale even where ``arch_config`` left it to the architecture's default."""
    from restoration.checkpoints import load_foreign_state_dict, save_checkpoint, sha256_file
    from restoration.factory import create_model
    from restoration.recipe import ENLARGERS, scale_of

    if architecture not in ENLARGERS:
        raise ConfigError(f"importable architectures are {', '.join(ENLARGERS)}, not {architecture!r}")
    arch_config = arch_config | {ENLARGERS[architecture]: scale_of(architecture, arch_config)}
    try:
        model = create_model(architecture, **arch_config)
        model.load_state_dict(load_foreign_state_dict(weights), strict=True)
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{weights} is not a {architecture} checkpoint with {arch_config}: {first}"
        ) from None
    card = {
        "name": name,
        "version": version,
        "task": "upscale",
        "architecture": architecture,
        "config": arch_config,
        "imported": {"file": weights.name, "sha256": sha256_file(weights)},
    }
    with tempfile.TemporaryDirectory(prefix="archive-import-") as tmp:
        save_checkpoint(model, Path(tmp), card)
        return register(settings, Path(tmp), status=status)


def set_status(settings: Settings, ref: str, status: str) -> ModelVersion:
    """Promote (one production version per task and name) or retire a version."""
    ensure_schema(settings.db.url, create=False)
    with sessions_for(settings.db.url).begin() as session:
        row = resolve(write_first(session), ref)
        if status == "production":
            _demote_others(session, row)
        row.status = status
        session.flush()
        session.expunge(row)
        return row


def _demote_others(session, row: ModelVersion) -> None:
    for other in queries.model_versions(session, row.task):
        if other is not row and other.name == row.name and other.status == "production":
            other.status = "candidate"


def resolve(session, ref: str) -> ModelVersion:
    """The one model version ``ref`` (``name@version``, ``task@production`` ...) names."""
    try:
        row = queries.resolve_model(session, ref)
    except LookupError as exc:
        raise ConfigError(str(exc)) from None
    if row is None:
        raise NotFound(f"no model version matches {ref!r} (see `archive models list`)")
    return row


def load(settings: Settings, ref: str, device: str = "cpu"):
    """Resolve ``ref``, fetch its files from where its registration put them (the recorded
    ``weights_uri``, not whatever the output store is today), check the digest, build the model.
    It only reads: a worker loading a model never migrates the catalogue or registers models
    (the edge that planned the work called :func:`ready`)."""
    from restoration.checkpoints import load_checkpoint

    ensure_schema(settings.db.url, create=False)
    with sessions_for(settings.db.url)() as session:
        row = resolve(session, ref)
    prefix = model_prefix(row.name, row.version)
    store_uri = row.weights_uri.removesuffix(f"/{prefix}/{WEIGHTS}")
    store = open_store(store_uri if store_uri != row.weights_uri else settings.store.output, settings.store)
    with tempfile.TemporaryDirectory(prefix="archive-model-") as tmp:
        for filename in (WEIGHTS, CARD):
            Path(tmp, filename).write_bytes(read_all(store, f"{prefix}/{filename}"))
        model, card = load_checkpoint(Path(tmp), expected_sha256=row.weights_sha256, device=device)
    return model, card, row


def ready(settings: Settings) -> None:
    """Make the archive ready to use its models, at an edge (a command, a flow planning its work):
    the catalogue at the head revision (an empty one is built) and the shipped checkpoints
    registered."""
    ensure_schema(settings.db.url)
    ensure_shipped(settings)


def release_order(card_path: Path) -> tuple:
    """Sort key of a shipped card ``<name>/<version>/card.json``: by name, then by version with its
    numbers compared as numbers (restore-unet v9 before v10, which a plain sort puts first)."""
    name, version = card_path.parent.parent.name, card_path.parent.name
    return name, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", version)]


def ensure_shipped(settings: Settings) -> None:
    """Register the checkpoints shipped with the code, the first time a catalogue needs a model.

    Their status comes from the release manifest ``restoration/weights/shipped.json``
    (``{"name/version": "production"}``): shipping is a release decision, so the training card
    stays exactly as training wrote it. A card's own ``shipped_status`` is the fallback. A new
    release never changes an existing archive's production model by itself: where one is in
    production already, a newly shipped version arrives as a candidate, for the archive to
    reprocess with and promote when it has looked at the results."""
    from sqlalchemy.exc import IntegrityError

    if not SHIPPED.is_dir():
        return
    manifest_path = SHIPPED / "shipped.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    with sessions_for(settings.db.url)() as session:
        rows = queries.model_versions(session)
    known = {(m.name, m.version) for m in rows}
    in_production = {m.name for m in rows if m.status == "production"}
    # In release order (v9 before v10): a reprocess treats the versions registered before a model
    # as older than it (derivatives.stale_items), so v10 must not be registered before v2..v9.
    for card_path in sorted(SHIPPED.glob(f"*/*/{CARD}"), key=release_order):
        card = json.loads(card_path.read_text())
        if (card["name"], card["version"]) in known:
            continue
        status = manifest.get(f"{card['name']}/{card['version']}", card.get("shipped_status", "candidate"))
        if status == "production" and card["name"] in in_production and known:
            log.warning(
                "%s@%s ships with this release; registered as a candidate because %s already has a "
                "production version (reprocess with it, then `archive models promote`)",
                card["name"],
                card["version"],
                card["name"],
            )
            status = "candidate"
        try:
            register(settings, card_path.parent, status=status)
        except (ConfigError, IntegrityError):
            # Two first runs on a new catalogue: the other registered it meanwhile. The same
            # weights are what this one would have registered; anything else is an error.
            with sessions_for(settings.db.url)() as session:
                row = queries.resolve_model(session, f"{card['name']}@{card['version']}")
            if row is None or row.weights_sha256 != card["weights_sha256"]:
                raise
            continue
        if status == "production":
            in_production.add(card["name"])


def agent_of(settings: Settings, row: ModelVersion) -> int:
    """The id of the catalogue agent for a model version (created on first use; two workers at once
    get one row, ``archive_db.ledger.get_or_create_agent``)."""
    with writing(settings.db.url) as session:
        return ledger.get_or_create_agent(session, "model", row.name, row.version).id
