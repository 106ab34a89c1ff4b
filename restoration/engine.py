"""The inference engine: tiled, batched restoration of images of any size, mode and bit depth.

Images are cut into overlapping tiles; tiles of several images share a batch; the outputs are
blended with feathered weights that are zero in the outer quarter of each overlap, so a pixel is
only taken from tiles that saw enough context around it. The model's memory (activations) is
bounded by the tile batch whatever the scan's size; the host keeps float32 accumulators of each
scan (about 20 bytes a pixel) while it is being restored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class EngineConfig:
    tile: int = 512
    overlap: int = 64  # must cover the model's receptive field: the outer quarter is discarded
    batch_tiles: int = 0  # 0: by device (16 tiles on CUDA; 2 on CPU, where activations share RAM)
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    dtype: str = "auto"  # auto (bf16/fp16 on CUDA, float32 on CPU), float32, bfloat16, float16
    channels_last: bool = True  # CUDA only

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.tile // 2:
            raise ValueError(f"overlap {self.overlap} must be between 0 and half the tile ({self.tile})")


@dataclass
class Result:
    image: np.ndarray  # same shape and dtype as the input
    mask: np.ndarray  # float32 [H, W], probability of damage


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name != "auto":
        return getattr(torch, name)
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# -- converting arrays to model input and back ---------------------------------------------------


def _scale(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if np.issubdtype(dtype, np.floating):
        return 1.0
    raise TypeError(f"unsupported pixel type {dtype}; use uint8, uint16 or float in [0, 1]")


def _as_hwc(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image[..., None]
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        return image
    raise ValueError(f"unsupported image shape {image.shape}: expected HxW, HxWx1, HxWx3 or HxWx4")


def _to_rgb(patch: np.ndarray, scale: float) -> torch.Tensor:
    """[h, w, c] array -> [3, h, w] float in [0, 1]; grey is repeated, alpha is left out."""
    t = torch.from_numpy(np.ascontiguousarray(patch[..., :3], dtype=np.float32)) / scale
    t = t.permute(2, 0, 1)
    return t.expand(3, -1, -1) if t.shape[0] == 1 else t


def _from_rgb(rgb: np.ndarray, original: np.ndarray, scale: float) -> np.ndarray:
    """Model output [h, w, 3] in [0, 1] -> the original's channels and dtype (alpha kept).

    Works in place on ``rgb`` (the canvas is not needed afterwards): a 40 MP scan's float32
    buffer is 480 MB, and a copy of it would be the largest allocation of the whole restore.
    """
    out = rgb.mean(axis=2, keepdims=True) if original.shape[2] == 1 else rgb
    np.clip(out, 0.0, 1.0, out=out)
    out *= scale
    if np.issubdtype(original.dtype, np.integer):
        out += 0.5
        np.floor(out, out=out)
    out = out.astype(original.dtype)
    if original.shape[2] == 4:
        out = np.concatenate([out, original[..., 3:4]], axis=2)
    return out


# -- tiles -------------------------------------------------------------------------------------


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(length: int, overlap: int, lead: bool, trail: bool) -> np.ndarray:
    """1-D blending weights of a tile: zero over the outer quarter of each shared overlap."""
    w = np.ones(length, dtype=np.float32)
    if overlap == 0:
        return w
    margin = overlap // 4
    span = max(1, overlap - 2 * margin)
    d = np.arange(length, dtype=np.float32)
    if lead:
        w = np.minimum(w, np.clip((d - margin + 0.5) / span, 0, 1))
    if trail:
        w = np.minimum(w, np.clip((length - 1 - d - margin + 0.5) / span, 0, 1))
    return w


@dataclass
class _Tile:
    image: int
    y: int
    x: int
    h: int
    w: int


class Restorer:
    """Runs one restoration model over batches of images; see the module docstring."""

    def __init__(self, model: nn.Module, config: EngineConfig | None = None):
        self.config = config or EngineConfig()
        self.device = resolve_device(self.config.device)
        self.batch_tiles = self.config.batch_tiles or (16 if self.device.type == "cuda" else 2)
        self.dtype = resolve_dtype(self.config.dtype, self.device)
        model = model.eval().to(self.device)
        if self.device.type == "cuda" and self.config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        x = batch.to(self.device, non_blocking=True)
        if self.device.type == "cuda" and self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            restored, mask_logits = self.model(x)
        restored = restored.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        return restored, torch.sigmoid(mask_logits.float())[:, 0].cpu().numpy()

    def restore(self, images: list[np.ndarray]) -> list[Result]:
        """Restore each image; results keep the input's size, channels and dtype."""
        arrays = [_as_hwc(np.asarray(img)) for img in images]
        scales = [_scale(a.dtype) for a in arrays]
        canvases = [_Canvas(i, a, self.config) for i, a in enumerate(arrays)]
        for batch in self._batches(canvases):
            tensors = torch.stack([_to_rgb(arrays[t.image][t.y : t.y + t.h, t.x : t.x + t.w], scales[t.image]) for t in batch])
            if self.device.type == "cuda":
                tensors = tensors.pin_memory()
            restored, masks = self._forward(tensors)
            for t, rgb, m in zip(batch, restored, masks, strict=True):
                canvases[t.image].add(t, rgb, m)
        results = []
        for original, array, scale, canvas in zip(images, arrays, scales, canvases, strict=True):
            rgb, mask = canvas.result()
            results.append(Result(_from_rgb(rgb, array, scale).reshape(np.shape(original)), mask))
        return results

    def _batches(self, canvases: list[_Canvas]) -> Iterator[list[_Tile]]:
        """Tiles of equal shape, from several images at a time, row after row."""
        pending: dict[tuple[int, int], list[_Tile]] = {}
        for tiles in _interleave([c.tiles() for c in canvases]):
            for t in tiles:
                group = pending.setdefault((t.h, t.w), [])
                group.append(t)
                if len(group) == self.batch_tiles:
                    yield pending.pop((t.h, t.w))
        yield from (g for g in pending.values() if g)


def _interleave(iterators: list[Iterator[list[_Tile]]]) -> Iterator[list[_Tile]]:
    """Rows of tiles of several images in turn, so small images share batches."""
    active = list(iterators)
    while active:
        for it in list(active):
            band = next(it, None)
            if band is None:
                active.remove(it)
            else:
                yield band


class _Canvas:
    """Accumulates the blended tiles of one image."""

    def __init__(self, index: int, image: np.ndarray, config: EngineConfig):
        self.index = index
        self.h, self.w = image.shape[:2]
        self.tile, self.overlap = config.tile, config.overlap
        self.ys = _starts(self.h, self.tile, self.overlap)
        self.xs = _starts(self.w, self.tile, self.overlap)
        self.rgb = np.zeros((self.h, self.w, 3), dtype=np.float32)
        self.mask = np.zeros((self.h, self.w), dtype=np.float32)
        self.weight = np.zeros((self.h, self.w), dtype=np.float32)

    def tiles(self) -> Iterator[list[_Tile]]:
        """One row of tiles at a time."""
        th, tw = min(self.tile, self.h), min(self.tile, self.w)
        for y in self.ys:
            yield [_Tile(self.index, y, x, th, tw) for x in self.xs]

    def add(self, t: _Tile, rgb: np.ndarray, mask: np.ndarray) -> None:
        wy = _ramp(t.h, self.overlap, t.y > 0, t.y + t.h < self.h)
        wx = _ramp(t.w, self.overlap, t.x > 0, t.x + t.w < self.w)
        w = wy[:, None] * wx[None, :]
        sl = (slice(t.y, t.y + t.h), slice(t.x, t.x + t.w))
        self.rgb[sl] += rgb * w[..., None]
        self.mask[sl] += mask * w
        self.weight[sl] += w

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalise in place and hand the buffers over."""
        np.maximum(self.weight, 1e-8, out=self.weight)
        self.rgb /= self.weight[..., None]
        self.mask /= self.weight
        return self.rgb, self.mask
