"""Checkpoints: safetensors + card round trip, digest checks, tampering refused, users' files."""

from __future__ import annotations

import json

import pytest
import torch

from restoration.checkpoints import (
    WEIGHTS,
    ChecksumError,
    load_checkpoint,
    load_foreign_state_dict,
    read_card,
    save_checkpoint,
)
from restoration.factory import create_model


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet_restorer_test")
    torch.nn.init.normal_(model.image_head.weight, std=0.01)  # not the identity, so outputs differ
    card = save_checkpoint(
        model,
        tmp_path / "v1",
        {
            "architecture": "unet_restorer",
            "config": {"base": 8, "depth": 2},
            "name": "restore-unet",
            "version": "v1",
        },
    )
    return model, card, tmp_path / "v1"


def test_round_trip_rebuilds_the_architecture_from_the_card(saved):
    model, card, directory = saved
    assert (directory / WEIGHTS).exists() and read_card(directory)["weights_sha256"] == card["weights_sha256"]
    loaded, loaded_card = load_checkpoint(directory, expected_sha256=card["weights_sha256"])
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert torch.equal(model.eval()(x)[0], loaded(x)[0])
    assert loaded_card["parameters"] == sum(p.numel() for p in model.parameters())


def test_tampered_weights_are_refused(saved):
    _, _, directory = saved
    data = bytearray((directory / WEIGHTS).read_bytes())
    data[-10] ^= 0xFF
    (directory / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="does not match the card"):
        load_checkpoint(directory)


def test_a_cards_config_edited_after_saving_is_refused(saved, tmp_path):
    """The config is stored in the weights file, so its digest pins the settings too: the same
    tensors saved with another config are another file, and a card edited by hand is refused."""
    model, card, directory = saved
    other = save_checkpoint(model, tmp_path / "v2", card | {"config": {"base": 8, "depth": 2, "x": 1}})
    assert other["weights_sha256"] != card["weights_sha256"]
    edited = read_card(directory) | {"config": {"base": 16, "depth": 2}}
    (directory / "card.json").write_text(json.dumps(edited))
    with pytest.raises(ChecksumError, match="config is not the one"):
        load_checkpoint(directory)


def test_catalogue_digest_must_agree(saved):
    _, _, directory = saved
    with pytest.raises(ChecksumError, match="does not match the catalogue"):
        load_checkpoint(directory, expected_sha256="0" * 64)


def test_card_needs_architecture_and_config(tmp_path):
    with pytest.raises(ValueError, match="architecture"):
        save_checkpoint(create_model("patchgan_test"), tmp_path, {"config": {}})


def test_users_pytorch_checkpoint_loads_without_unpickling_code(tmp_path):
    model = create_model("srvgg_compact_test")
    torch.save({"params": model.state_dict()}, tmp_path / "user.pth")
    state = load_foreign_state_dict(tmp_path / "user.pth")
    create_model("srvgg_compact_test").load_state_dict(state, strict=True)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"params": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(Exception, match="[Ww]eights only load failed|Unsupported"):
        load_foreign_state_dict(tmp_path / "evil.pth")
