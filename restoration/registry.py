"""One registry of architectures, keyed by name: a checkpoint's card names its architecture.

A leaf: it imports no architecture. Each architecture module registers itself with
``register_model``; ``restoration.factory`` imports the built-in ones and builds models by name.
"""

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


def build(name: str, **cfg) -> nn.Module:
    """Build an architecture registered so far; unknown names fail with the list of known ones."""
    try:
        factory = _MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_MODELS))}") from None
    return factory(**cfg)


def registered() -> list[str]:
    return sorted(_MODELS)
