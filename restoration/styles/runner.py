"""Running a style over whole scans: presets band by band (exact: every field is defined by
position), learned styles through the tiled engine (feathered overlaps, as restoration).

A learned style can also print to its collection's tonal range (``tone``, see ``styles.tone``):
one print curve per image, fitted on a preview of the whole image and applied per pixel, so
tiles still agree.

Both keep the input's size and bit depth and the alpha channel; grey inputs come out as RGB,
since a style is a colour. Results are ``engine.Result`` with no mask.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
from torch import nn

from restoration.engine import EngineConfig, Restorer, Result, _as_hwc, _dtype, _scale, resolve_device
from restoration.styles.fields import Placement
from restoration.styles.presets import Preset
from restoration.styles.tone import PrintCurve, apply_curve, match_print, preview

# A learned style's ``tone`` unless the recipe says otherwise: the fitted curve as it is. On the
# bench's held-out photographs (tone 0, 0.5, 1) and on stereo_motorcycle (0, 0.5, 0.75, 1), each
# step up brought every style's colour distance closer to its exemplars', at a luma SSIM >= 0.7.
TONE_DEFAULT = 1.0


def _to_output(rgb: np.ndarray, original: np.ndarray, scale: float) -> np.ndarray:
    """[h, w, 3] floats in [0, 1] -> the original's dtype, its alpha appended if it had one."""
    out = np.clip(rgb, 0.0, 1.0) * scale
    if np.issubdtype(original.dtype, np.integer):
        out = np.floor(out + 0.5)
    out = out.astype(original.dtype)
    return np.concatenate([out, original[..., 3:4]], axis=2) if original.shape[2] == 4 else out


def _rgb_channels(image: np.ndarray) -> int:
    return 4 if image.shape[2] == 4 else 3


class PresetStylist:
    """Applies one preset (with its parameters and strength) band by band: memory is bounded by
    the band, and the result is the same as in one piece."""

    def __init__(
        self,
        preset: Preset,
        strength: float = 1.0,
        params: dict[str, Any] | None = None,
        device: str = "auto",
        band: int = 512,
    ):
        self.preset, self.strength, self.params = preset, strength, preset.params(params)
        self.device, self.band = resolve_device(device), band
        self.dtype = torch.float32

    def process(self, images: list[np.ndarray | torch.Tensor]) -> list[Result]:
        return [Result(self.style(img), None) for img in images]

    @torch.inference_mode()
    def style(self, image: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(image, torch.Tensor):  # a JPEG decoded on the GPU
            image = image.cpu().numpy()
        src = _as_hwc(np.asarray(image))
        scale = _scale(_dtype(src))
        h, w = src.shape[:2]
        out = np.empty((h, w, _rgb_channels(src)), dtype=src.dtype)
        for y in range(0, h, self.band):
            part = src[y : y + self.band]
            x = torch.from_numpy(np.ascontiguousarray(part[..., :3], dtype=np.float32) / scale).permute(
                2, 0, 1
            )[None]
            styled = self.preset.apply(x.to(self.device), self.strength, self.params, Placement(y, 0, h, w))
            out[y : y + self.band] = _to_output(styled[0].permute(1, 2, 0).cpu().numpy(), part, scale)
        return out


class _Fixed(nn.Module):
    """A multi-style network with its style code fixed, shaped like a restorer for the engine:
    ``forward(x) -> (styled, mask logits)``; ``strength`` blends with the input. With ``tone``,
    the buffer ``curve`` (the image's print curve) is applied to the input first."""

    def __init__(self, net: nn.Module, code: torch.Tensor, strength: float, tone: bool = False):
        super().__init__()
        self.net, self.strength, self.tone = net, strength, tone
        self.alignment = getattr(net, "alignment", 1)
        self.tile_overlap = getattr(net, "tile_overlap", 0)
        self.register_buffer("code", code[None].float(), persistent=False)
        self.register_buffer("curve", PrintCurve().as_tensor(), persistent=False)

    def render(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.code.expand(x.shape[0], -1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        styled = torch.lerp(x, self.render(apply_curve(x, self.curve) if self.tone else x), self.strength)
        return styled, torch.full_like(x[:, :1], -20.0)


class LearnedStylist:
    """A learned multi-style network over scans with the tiled engine (no per-tile statistics:
    see ``archs.stylenet``). With ``tone`` > 0 each image is printed to the style's exemplar
    tones first (the network must keep them: ``StyleNet.tones``); ``curve`` holds the print curve
    of the last image styled."""

    def __init__(
        self,
        net: nn.Module,
        styles: list[str],
        style: str | dict[str, float],
        strength: float = 1.0,
        config: EngineConfig | None = None,
        tone: float = 0.0,
    ):
        code = style_code(styles, style)
        if tone:
            learned_params(net, {"tone": tone})  # in range, and the network keeps tones (ValueError)
        self.fixed = _Fixed(net, code, strength, tone=bool(tone))
        self.engine = Restorer(self.fixed, config)
        self.device, self.dtype, self.config = self.engine.device, self.engine.dtype, self.engine.config
        self.batch_tiles = self.engine.batch_tiles
        self.tone, self.curve = tone, PrintCurve()
        if tone:
            self.target = (code[:, None] * net.tones.detach().cpu().float()).sum(
                0
            )  # a mixture: quantiles mixed
        self._lock = threading.Lock()  # one image's curve at a time in the shared network

    def process(self, images: list[np.ndarray | torch.Tensor]) -> list[Result]:
        arrays = [_as_hwc(img if isinstance(img, np.ndarray) else img.cpu().numpy()) for img in images]
        rgb = [
            np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in arrays
        ]  # grey -> RGB: styles are colour
        if not self.tone:
            return [Result(r.image, None) for r in self.engine.restore(rgb)]
        results = []
        for img in rgb:  # a curve per image, so one at a time
            with self._lock, torch.inference_mode():
                self.curve = match_print(
                    self.fixed.render, preview(img).to(self.device), self.target, self.tone
                )
                self.fixed.curve.copy_(self.curve.as_tensor())
                results.append(
                    Result(self.engine.restore([img])[0].image, None, {"print_curve": self.curve.as_dict()})
                )
        return results


def learned_params(net: nn.Module, params: dict[str, Any] | None) -> dict[str, Any]:
    """A learned style's recipe parameters: ``tone`` (0..1, default ``TONE_DEFAULT``) where the
    network keeps its exemplars' tones; none otherwise, as before tones existed (so recipes of
    older models keep their hashes). ValueError for anything else."""
    params = dict(params or {})
    unknown = set(params) - {"tone"}
    if unknown:
        raise ValueError(f"a learned style has no parameter(s) {sorted(unknown)}; it has: tone")
    if not getattr(net, "has_tones", lambda: False)():
        if params:
            raise ValueError(
                "this network keeps no tones of its exemplars (trained before them, or a user's own "
                "weights): it takes no tone"
            )
        return {}
    try:
        tone = float(params.get("tone", TONE_DEFAULT))
    except ValueError:
        raise ValueError(f"tone must be a number between 0 and 1, not {params['tone']!r}") from None
    if not 0 <= tone <= 1:
        raise ValueError(f"tone must be between 0 and 1, not {tone}")
    return {"tone": tone}


def style_code(styles: list[str], style: str | dict[str, float]) -> torch.Tensor:
    """One-hot code of a style by name, or a normalised mixture ``{name: weight}``."""
    weights = {style: 1.0} if isinstance(style, str) else dict(style)
    unknown = set(weights) - set(styles)
    if unknown:
        raise KeyError(f"the network has no style(s) {sorted(unknown)}; it has {styles}")
    code = torch.tensor([float(weights.get(s, 0.0)) for s in styles])
    if code.sum() <= 0:
        raise ValueError("a style mixture needs a positive weight")
    return code / code.sum()
