"""One registry of architectures, keyed by name: a checkpoint's card names its architecture."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, **defaults):
    """Register ``fn`` (a class or factory) under ``name``, with default keyword arguments.

    Registering the same name twice is an error: two architectures must not share a card name.
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = (lambda **cfg: fn(**(defaults | cfg))) if defaults else fn
        return fn

    return decorator


def create_model(name: str, **cfg) -> nn.Module:
    """Build a registered architecture; unknown names fail with the list of known ones."""
    _load_builtin()
    try:
        factory = _MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_MODELS))}") from None
    return factory(**cfg)


def list_models() -> list[str]:
    _load_builtin()
    return sorted(_MODELS)


def _load_builtin() -> None:
    # Registration is explicit: importing the architecture modules runs their decorators.
    from restoration.archs import inpainter, patchgan, pipeline, rrdbnet, srvgg, stylenet, unet  # noqa: F401
