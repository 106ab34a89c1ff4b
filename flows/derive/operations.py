"""The registry of derivative operations. Each entry says what the operation records (its event
type and verb), how a batch finds its items' inputs, how its processor is built, and how a version
describes what it was made from; the shared engine (dispatch, worker, writer) only reads entries.
A new operation (colour, say) is one ``register_operation`` call, as enlargement's is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archive_db.derivatives import Recipe
from archive_db.models import RESTORATION, STYLE_TRANSFER, UPSCALING, ModelVersion
from flows.derive import inputs
from flows.derive.inputs import Todo, WorkItem
from flows.errors import ConfigError
from flows.model_versions import load
from flows.settings import Settings


@dataclass(frozen=True)
class Operation:
    name: str  # the recipe's ``operation`` (a model version's task)
    event: str  # the event type each item's outcome is recorded as
    verb: str  # "Restored" in a run's summary
    todo: Callable[..., Todo]  # (session, item ids, recipe, output URI, with masks) -> the items still to do
    build: Callable[..., tuple[Any, dict]]  # (settings, model row, recipe, device) -> (processor, card)
    made: Callable[[Recipe, WorkItem], str]  # what a version was made with and from, for its XMP history
    takes_masks: bool = False  # a curator's mask can be supplied (recorded in the sidecar)


OPERATIONS: dict[str, Operation] = {}


def register_operation(op: Operation) -> Operation:
    if op.name in OPERATIONS:
        raise ValueError(f"operation {op.name!r} is already registered")
    OPERATIONS[op.name] = op
    return op


def operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise KeyError(f"unknown operation {name!r}; registered: {', '.join(sorted(OPERATIONS))}") from None


def _config(settings: Settings, device):
    from restoration.engine import EngineConfig

    return EngineConfig(tile=settings.restore.tile, device=str(device), dtype=settings.device.dtype)


def restorer(settings: Settings, row: ModelVersion, recipe: Recipe, device) -> tuple[Any, dict]:
    """The engine over the model; with the recipe's tone or strength, through the tone stage."""
    from restoration.tone_runner import engine_for

    model, card, _ = load(settings, f"{row.name}@{row.version}", device=str(device))
    return engine_for(model, _config(settings, device), recipe.params), card


def stylist(settings: Settings, row: ModelVersion, recipe: Recipe, device) -> tuple[Any, dict]:
    """A preset (cheap, no weights) or a learned network's style, at the recipe's strength."""
    from restoration.styles.presets import get_preset
    from restoration.styles.runner import LearnedStylist, PresetStylist

    p = recipe.params
    if row.architecture == "preset":
        preset = get_preset(p["style"])
        if preset.digest != row.weights_sha256:
            raise ConfigError(f"preset {preset.name} in this code is not {row.name}@{row.version}")
        return PresetStylist(preset, p["strength"], p["params"], device=str(device)), {}
    net, card, _ = load(settings, f"{row.name}@{row.version}", device=str(device))
    tone = p["params"].get("tone", 0.0)
    return LearnedStylist(
        net, card["styles"], p["style"], p["strength"], _config(settings, device), tone=tone
    ), card


def enlarger(settings: Settings, row: ModelVersion, recipe: Recipe, device) -> tuple[Any, dict]:
    """The engine over a model that enlarges by the recipe's scale (checked against the model's)."""
    from restoration.engine import Restorer

    model, card, _ = load(settings, f"{row.name}@{row.version}", device=str(device))
    if getattr(model, "scale", 1) != recipe.params["scale"]:
        raise ConfigError(
            f"{row.name}@{row.version} enlarges by {getattr(model, 'scale', 1)}, not {recipe.params['scale']}"
        )
    return Restorer(model, _config(settings, device)), card


def takes_masks(row: ModelVersion) -> bool:
    """Whether a model version restores with a curator's mask where an item has one (a staged
    pipeline: its inpainter fills the mask instead of what the detector found)."""
    return row.task == "restore" and row.architecture == "restore_pipeline"


def _restored_with(recipe: Recipe, w: WorkItem) -> str:
    return f"restore with {recipe.model} (weights sha256 {recipe.weights_sha256})"


def _source(w: WorkItem) -> str:
    return f"derivative {w.input.parent_id} (sha256 {w.input.sha256})" if w.input.parent_id else "the master"


def _styled_from(recipe: Recipe, w: WorkItem) -> str:
    return f"style {recipe.params['style']} with {recipe.model} (sha256 {recipe.weights_sha256}) from {_source(w)}"


def _enlarged_from(recipe: Recipe, w: WorkItem) -> str:
    return (
        f"enlarge x{recipe.params['scale']} with {recipe.model} (sha256 {recipe.weights_sha256}) "
        f"from {_source(w)}"
    )


register_operation(
    Operation("restore", RESTORATION, "Restored", inputs.restore_todo, restorer, _restored_with, True)
)
register_operation(Operation("style", STYLE_TRANSFER, "Styled", inputs.style_todo, stylist, _styled_from))
# An enlargement is made from a source version as a style is (the current restored one, or the master).
register_operation(Operation("upscale", UPSCALING, "Enlarged", inputs.style_todo, enlarger, _enlarged_from))
