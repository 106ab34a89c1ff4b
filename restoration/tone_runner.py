"""Restoring with the recipe's ``tone`` and ``strength``: each image's tone correction is fitted
on a preview of the whole image (``tone_stage.fit``), set in the model, and the tiled engine runs
as usual, so tiles agree; the fitted values come back as the result's ``derived`` (the sidecar's).

``strength`` 0 returns every input as it is, bit for bit, without running the model."""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import nn

from restoration import tone_stage
from restoration.archs.toned import TonedRestorer
from restoration.engine import EngineConfig, Restorer, Result, _as_hwc
from restoration.styles.tone import preview


class TonedRun:
    """The engine over a restorer with the tone stage (a ``TonedRestorer``; any other restorer is
    wrapped, and takes ``strength`` only)."""

    def __init__(
        self, model: nn.Module, config: EngineConfig | None = None, tone: str = "off", strength: float = 1.0
    ):
        if tone_stage.check_tone(tone) != "off" and not isinstance(model, TonedRestorer):
            raise ValueError(f"{type(model).__name__} has no tone stage: it takes tone=off only")
        self.model = model if isinstance(model, TonedRestorer) else TonedRestorer(model=model)
        self.model.strength.fill_(float(strength))
        self.tone, self.strength = tone, float(strength)
        self.engine = Restorer(self.model, config)
        self.device, self.dtype, self.config = self.engine.device, self.engine.dtype, self.engine.config
        self.batch_tiles = self.engine.batch_tiles
        self._lock = threading.Lock()  # one image's correction at a time in the shared model

    def process(
        self, images: list[np.ndarray | torch.Tensor], masks: list[np.ndarray | None] | None = None
    ) -> list[Result]:
        masks = list(masks) if masks is not None else [None] * len(images)
        if self.strength == 0:
            return [Result(_own(img), None) for img in images]
        if self.tone == "off":
            with self._lock:
                self.model.tone.copy_(tone_stage.IDENTITY)
                return self.engine.restore(images, masks)
        results = []
        for img, mask in zip(images, masks, strict=True):  # a correction per image, so one at a time
            array = _as_hwc(img if isinstance(img, np.ndarray) else img.cpu().numpy())
            small = preview(array)  # subsampled first: a grey scan is not copied to three channels
            small = small.expand(-1, 3, -1, -1) if small.shape[1] == 1 else small
            fit = self.model.fit(small.to(self.device), self.tone)
            with self._lock:
                self.model.tone.copy_(fit.as_tensor())
                (result,) = self.engine.restore([img], [mask])
            result.derived = {"tone": fit.as_dict()}
            results.append(result)
        return results


def _own(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """The input as the engine would have returned its restoration's shape (a copy of its pixels)."""
    return np.array(image.cpu().numpy() if isinstance(image, torch.Tensor) else image, copy=True)


def engine_for(model: nn.Module, config: EngineConfig | None, params: dict) -> Restorer | TonedRun:
    """The engine a restore recipe's ``params`` ask for: the plain engine where there are none (as
    before the tone stage), else a ``TonedRun`` with their tone and strength."""
    if not params:
        return Restorer(model, config)
    return TonedRun(model, config, params.get("tone", "off"), params.get("strength", 1.0))
