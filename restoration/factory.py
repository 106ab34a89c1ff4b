"""Build a model by its registered name (a checkpoint's card names it): the built-in
architectures are imported here, so that ``restoration.registry`` stays a leaf."""

from __future__ import annotations

from torch import nn

from restoration import registry


def _load_builtin() -> None:
    # Registration is explicit: importing the architecture modules runs their decorators.
    from restoration.archs import (  # noqa: F401
        inpainter,
        patchgan,
        pipeline,
        rrdbnet,
        srvgg,
        stylenet,
        tone_net,
        toned,
        unet,
    )


def create_model(name: str, **cfg) -> nn.Module:
    """Build a registered architecture; unknown names fail with the list of known ones."""
    _load_builtin()
    return registry.build(name, **cfg)


def list_models() -> list[str]:
    _load_builtin()
    return registry.registered()
