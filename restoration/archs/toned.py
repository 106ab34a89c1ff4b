"""A restorer with the tone stage before it and the curator's strength after it, one model version
to the catalogue. ``tone`` (the image's ``tone_stage.ToneFit`` as data) and ``strength`` are
buffers set per image before the tiles run, so every tile of an image sees the same correction;
``forward(x, mask=None) -> (restored, mask_logits)`` like the restorer inside."""

from __future__ import annotations

import torch
from torch import nn

from restoration import tone_stage
from restoration.archs.tone_net import ToneNet
from restoration.registry import build, register_model

ESTIMATORS = ("classical", "learned")


class TonedRestorer(nn.Module):
    def __init__(
        self,
        restorer: dict | None = None,
        tone: dict | None = None,
        model: nn.Module | None = None,
    ):
        super().__init__()
        if (restorer is None) == (model is None):
            raise ValueError("a toned restorer wraps one restorer: give its spec or the model")
        self.restorer = (
            model if model is not None else build(restorer["architecture"], **restorer.get("config", {}))
        )
        self.tone_config = {"estimator": "classical"} | dict(tone or {})
        if self.tone_config["estimator"] not in ESTIMATORS:
            raise ValueError(
                f"the tone estimator is one of {ESTIMATORS}, not {self.tone_config['estimator']!r}"
            )
        if not 0.0 <= self.tone_config.get("neutral_blend", 0.0) <= 1.0:
            raise ValueError(f"neutral_blend is a share (0..1), not {self.tone_config['neutral_blend']!r}")
        # the learned estimator's weights are the model's (``estimator.*``), vouched for by its digest
        self.estimator = (
            ToneNet(**self.tone_config.get("net", {})) if self.tone_config["estimator"] == "learned" else None
        )
        for name in ("alignment", "tile_overlap", "scale"):
            if hasattr(self.restorer, name):
                setattr(self, name, getattr(self.restorer, name))
        from restoration.engine import takes_mask

        self.takes_mask = takes_mask(self.restorer)
        self.register_buffer("tone", tone_stage.IDENTITY.clone(), persistent=False)
        self.register_buffer("strength", torch.ones(()), persistent=False)

    @torch.inference_mode()
    def fit(self, small: torch.Tensor, mode: str) -> tone_stage.ToneFit:
        """The correction for a picture given by its preview [1, 3, h, w] in [0, 1] (a learned
        estimate within the classical guard on light subjects: ``tone_stage.guarded``; for
        ``neutral``, moved ``tone["neutral_blend"]`` of the way to the classical fit)."""
        if self.estimator is None or tone_stage.check_tone(mode) == "off":
            return tone_stage.fit(small, mode)
        neutral, auto = self.estimator(small.float().clamp(0, 1))
        fit = tone_stage.ToneFit.from_tensor(
            (neutral if mode == "neutral" else auto)[0], mode=mode, estimator="learned"
        )
        fit = tone_stage.guarded(fit, small)
        share = self.tone_config.get("neutral_blend", 0.0)
        if mode == "neutral" and share:
            fit = tone_stage.blend(fit, tone_stage.fit(small, mode), share)
        return fit

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        toned = tone_stage.apply(x, self.tone)
        out = self.restorer(toned) if mask is None else self.restorer(toned, mask)
        restored, logits = out if isinstance(out, tuple) else (out, None)
        restored = torch.lerp(x, restored.to(x.dtype), self.strength.to(x.dtype))
        return restored if logits is None else (restored, logits)


register_model("toned_restorer")(TonedRestorer)
register_model("toned_restorer_test", restorer={"architecture": "unet_restorer_test"})(TonedRestorer)
