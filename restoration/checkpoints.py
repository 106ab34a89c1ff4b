"""Checkpoints: weights as safetensors (never unpickled) beside a ``card.json`` that names the
architecture and config, so any checkpoint rebuilds by name; sha256 checked before use."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from restoration.factory import create_model

WEIGHTS, CARD = "model.safetensors", "card.json"


class ChecksumError(Exception):
    """The weights on disk are not the ones the card (or the catalogue) vouches for."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# How a checkpoint's floating-point tensors are stored: float32 as trained, or float16 (half the
# file; each tensor rounded once, upcast to the model's float32 when loaded).
STORAGE = {"float32": torch.float32, "float16": torch.float16}


def stored_state(model: nn.Module, storage: str = "float32") -> dict[str, torch.Tensor]:
    """The model's state dict as ``save_checkpoint`` writes it (floating tensors in ``storage``)."""
    if storage not in STORAGE:
        raise ValueError(f"storage must be one of {sorted(STORAGE)}, not {storage!r}")
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        state[k] = (v.to(STORAGE[storage]) if v.is_floating_point() else v).contiguous()
    return state


def save_checkpoint(
    model: nn.Module, directory: Path, card: dict[str, Any], storage: str = "float32"
) -> dict[str, Any]:
    """Write ``model.safetensors`` and ``card.json`` into ``directory``; returns the final card.

    ``card`` must name ``architecture`` and ``config`` (the keyword arguments of create_model).
    A pipeline's card lists its ``stages``: each one's ``tensors_sha256`` is computed here, on the
    tensors as stored. ``storage`` "float16" halves the file (recorded in the card).
    """
    missing = {"architecture", "config"} - set(card)
    if missing:
        raise ValueError(f"a model card needs {sorted(missing)}")
    state = stored_state(model, storage)
    directory.mkdir(parents=True, exist_ok=True)
    # the config travels inside the weights file, so its sha256 pins what the model does, not only
    # its tensors (two versions of one network with different settings have different digests)
    metadata = {"architecture": card["architecture"], "config": _canonical(card["config"])}
    save_file(state, directory / WEIGHTS, metadata=metadata)
    card = {k: v for k, v in card.items() if k != "storage"}
    if "stages" in card:
        card["stages"] = {
            name: spec | {"tensors_sha256": tensors_sha256(stage_state(state, name))}
            for name, spec in card["stages"].items()
        }
    card |= {
        "weights": WEIGHTS,
        "weights_sha256": sha256_file(directory / WEIGHTS),
        "parameters": sum(v.numel() for v in state.values()),
    } | ({"storage": storage} if storage != "float32" else {})
    (directory / CARD).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return card


def _canonical(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a state dict's names, dtypes, shapes and bytes, in name order: a stage's
    identity inside a pipeline's one weights file (the same tensors give the same digest)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def stage_state(state: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
    prefix = f"{stage}."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def check_stages(card: dict[str, Any], state: dict[str, torch.Tensor], source: Path) -> None:
    """A pipeline's card lists each stage's architecture, config and tensors' digest: every stage
    must be exactly the one listed, and built as the pipeline's config says (a toned restorer's
    one stage is its ``restorer``)."""
    config = card["config"]
    built = (
        config["stages"]
        if "stages" in config
        else {"restorer": config["restorer"]}
        if "restorer" in config
        else {}
    )
    if set(built) != set(card["stages"]):
        raise ChecksumError(
            f"{source}: the card lists stages {sorted(card['stages'])}, the config {sorted(built)}"
        )
    for name, spec in card["stages"].items():
        if {k: spec.get(k) for k in ("architecture", "config")} != {
            k: built[name].get(k) for k in ("architecture", "config")
        }:
            raise ChecksumError(
                f"{source}: stage {name} is listed as {spec['architecture']} but configured otherwise"
            )
        actual = tensors_sha256(stage_state(state, name))
        if actual != spec["tensors_sha256"]:
            raise ChecksumError(
                f"{source}: stage {name}'s tensors have sha256 {actual}, the card vouches for {spec['tensors_sha256']}"
            )


def read_card(directory: Path) -> dict[str, Any]:
    return json.loads((directory / CARD).read_text())


def load_checkpoint(
    directory: Path, expected_sha256: str | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the card's architecture and load its weights, refusing any digest mismatch (and a
    card whose config is not the one the weights file was saved with, where the file records it).

    ``expected_sha256`` is what the catalogue recorded; it must agree with the card and the file.
    """
    card = read_card(directory)
    weights = directory / card.get("weights", WEIGHTS)
    actual = sha256_file(weights)
    for source, expected in (("the card", card.get("weights_sha256")), ("the catalogue", expected_sha256)):
        if expected is not None and expected != actual:
            raise ChecksumError(f"{weights}: sha256 {actual} does not match {source} ({expected})")
    with safe_open(weights, "pt", device=str(device)) as stored:  # one read: its config, its tensors
        saved_with = (stored.metadata() or {}).get("config")
        if saved_with is not None and saved_with != _canonical(card["config"]):
            raise ChecksumError(f"{weights}: the card's config is not the one these weights were saved with")
        state = {name: stored.get_tensor(name) for name in stored.keys()}  # noqa: SIM118
    if "stages" in card:
        check_stages(card, state, weights)
    model = create_model(card["architecture"], **card["config"])
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), card


def load_foreign_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A user's own checkpoint of a supported architecture: safetensors, or a PyTorch file read
    with ``weights_only=True`` (tensors only, no code), unwrapping Real-ESRGAN's
    ``params_ema`` / ``params`` keys."""
    if path.suffix == ".safetensors":
        return load_file(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("params_ema", "params", "state_dict"):
        if isinstance(obj, dict) and key in obj:
            return obj[key]
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise ValueError(f"{path}: not a state dict (expected tensors, or params_ema/params/state_dict)")
