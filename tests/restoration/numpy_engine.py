"""The engine's blending as it was before it moved to the device (numpy on the host, float32
canvases divided by summed weights): the reference the device blending is tested against."""

from __future__ import annotations

import numpy as np
import torch

from restoration.engine import EngineConfig, _as_hwc, _dtype, _layout, _ramp, _scale


@torch.inference_mode()
def numpy_restore(model: torch.nn.Module, images: list[np.ndarray], config: EngineConfig) -> list[tuple]:
    """(image, float32 mask) per image, one tile at a time, blended on the host in numpy."""
    results, align = [], int(getattr(model, "alignment", 1))
    for original in images:
        image = _as_hwc(np.asarray(original))
        scale = _scale(_dtype(image))
        h, w = image.shape[:2]
        ys, th = _layout(h, config.tile, config.overlap, align)
        xs, tw = _layout(w, config.tile, config.overlap, align)
        rgb_sum = np.zeros((h, w, 3), np.float32)
        mask_sum = np.zeros((h, w), np.float32)
        weight = np.zeros((h, w), np.float32)
        for y in ys:
            for x in xs:
                patch = image[y : y + th, x : x + tw, :3].astype(np.float32) / scale
                t = torch.from_numpy(patch).permute(2, 0, 1).expand(3, -1, -1)[None]
                restored, logits = model(t.contiguous())
                rgb = restored[0].float().clamp(0, 1).permute(1, 2, 0).numpy()
                mask = torch.sigmoid(logits[0, 0].float()).numpy()
                wy = _ramp(th, config.overlap, y > 0, y + th < h)
                wx = _ramp(tw, config.overlap, x > 0, x + tw < w)
                wt = wy[:, None] * wx[None, :]
                rgb_sum[y : y + th, x : x + tw] += rgb * wt[..., None]
                mask_sum[y : y + th, x : x + tw] += mask * wt
                weight[y : y + th, x : x + tw] += wt
        np.maximum(weight, 1e-8, out=weight)
        rgb = rgb_sum / weight[..., None]
        out = rgb.mean(axis=2, keepdims=True) if image.shape[2] == 1 else rgb
        out = np.clip(out, 0, 1) * scale
        if np.issubdtype(image.dtype, np.integer):
            out = np.floor(out + 0.5)
        out = out.astype(image.dtype)
        if image.shape[2] == 4:
            out = np.concatenate([out, image[..., 3:4]], axis=2)
        results.append((out.reshape(np.asarray(original).shape), mask_sum / weight))
    return results
