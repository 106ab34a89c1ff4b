"""The inference engine: tiled, batched restoration of images of any size, mode and bit depth.

Images are cut into overlapping tiles, as few as cover the image with the overlap asked for and
spread evenly; tiles of the same shape from several images share a batch; the outputs are
blended with feathered weights that are zero in the outer quarter of each overlap, so a pixel is
only taken from tiles that saw enough context around it. The model's memory (activations) is
bounded by the tile batch whatever the scan's size, and so is the blending: float accumulators
cover one row of tiles, and finished rows go straight into the output array (the input's dtype)
and the float32 damage mask.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class EngineConfig:
    tile: int = 768  # largest tile side; tiles shrink to spread evenly over each image
    # Must cover the model's receptive field. None: the rule, min(64, tile // 4) (the outer quarter
    # of a tile is blended away); callers give a tile and let the engine choose.
    overlap: int | None = None
    batch_tiles: int = 0  # 0: by device (16 tiles on CUDA; 1 on CPU, where activations share RAM)
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    dtype: str = "auto"  # auto (bf16/fp16 on CUDA, float32 on CPU), float32, bfloat16, float16
    channels_last: bool = True  # NHWC: faster convolutions on CUDA and with oneDNN on CPU
    compile: bool = False  # torch.compile the model (worth it for long runs on one tile shape)

    def __post_init__(self) -> None:
        if self.overlap is None:
            object.__setattr__(self, "overlap", min(64, self.tile // 4))
        if not 0 <= self.overlap < self.tile // 2:
            raise ValueError(f"overlap {self.overlap} must be between 0 and half the tile ({self.tile})")


@dataclass
class Result:
    image: np.ndarray  # same shape and dtype as the input (RGB for a grey input styled)
    mask: np.ndarray | None  # float32 [H, W], probability of damage; None from a style
    derived: dict | None = None  # values derived from this image by the recipe (a style's print curve)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_device(name: str, dtype: str = "auto") -> torch.device:
    """The device ``name`` if this machine has it (and ``dtype`` is one the engine runs), else a
    ValueError that says why, in one line: before any run starts, not from deep in a batch."""
    try:
        device = resolve_device(name)
    except RuntimeError as exc:
        raise ValueError(f"device {name!r} is not a device name ({str(exc).splitlines()[0]})") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {name!r}: this machine has no CUDA device")
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device {name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
    elif device.type != "cpu":
        raise ValueError(f"device {name!r}: the engine runs on cpu or cuda")
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name != "auto":
        return getattr(torch, name)
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# -- converting arrays to model input and back ---------------------------------------------------


def _dtype(image: np.ndarray | torch.Tensor) -> np.dtype:
    """The numpy dtype of an array, or of a tensor (uint8 only: what the GPU JPEG decoder gives)."""
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8:
            raise TypeError(f"unsupported tensor type {image.dtype}; tensors must be uint8 [H, W, C]")
        return np.dtype(np.uint8)
    return image.dtype


def _scale(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if np.issubdtype(dtype, np.floating):
        return 1.0
    raise TypeError(f"unsupported pixel type {dtype}; use uint8, uint16 or float in [0, 1]")


def _as_hwc(image: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    if image.ndim == 2:
        return image[..., None]
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        return image
    raise ValueError(f"unsupported image shape {image.shape}: expected HxW, HxWx1, HxWx3 or HxWx4")


def _to_rgb(patch: np.ndarray | torch.Tensor, scale: float) -> torch.Tensor:
    """[h, w, c] array or tensor -> [3, h, w] float in [0, 1] on the same device; grey is
    repeated, alpha is left out."""
    if isinstance(patch, torch.Tensor):
        t = patch[..., :3].float() / scale
    else:
        t = torch.from_numpy(np.ascontiguousarray(patch[..., :3], dtype=np.float32)) / scale
    t = t.permute(2, 0, 1)
    return t.expand(3, -1, -1) if t.shape[0] == 1 else t


def _from_rgb(rgb: np.ndarray, original: np.ndarray | torch.Tensor, scale: float) -> np.ndarray:
    """Model output [h, w, 3] in [0, 1] -> the original's channels and dtype (alpha kept).
    Works in place on ``rgb``, a band of the canvas that is not needed afterwards."""
    out = rgb.mean(axis=2, keepdims=True) if original.shape[2] == 1 else rgb
    np.clip(out, 0.0, 1.0, out=out)
    out *= scale
    dtype = _dtype(original)
    if np.issubdtype(dtype, np.integer):
        out += 0.5
        np.floor(out, out=out)
    out = out.astype(dtype)
    if original.shape[2] == 4:
        alpha = original[..., 3:4]
        out = np.concatenate([out, alpha.cpu().numpy() if isinstance(alpha, torch.Tensor) else alpha], axis=2)
    return out


# -- tiles -------------------------------------------------------------------------------------


def _layout(length: int, tile: int, overlap: int, align: int = 1) -> tuple[list[int], int]:
    """Starts and size of the tiles along one axis: as few tiles as cover ``length`` with at
    least ``overlap`` shared by neighbours, of one size (at most ``tile``, a multiple of 8 where
    it can be) and spread evenly, so no compute goes on overlap that is not needed. Starts are
    multiples of ``align`` (the model's downsampling factor), so every tile sees the same
    sampling grid as the whole image; for that the size is congruent to ``length``."""
    if length <= tile:
        return [0], length
    n = math.ceil((length - overlap) / (tile - overlap))
    size = min(length, -(-math.ceil((length + (n - 1) * overlap) / n) // 8) * 8)
    size += (length - size) % align
    while True:
        starts = [i * (length - size) // (n - 1) // align * align for i in range(n)]
        if all(size - (b - a) >= overlap for a, b in zip(starts, starts[1:], strict=False)):
            return starts, size
        size += align


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
    row: int
    y: int
    x: int
    h: int
    w: int


class Restorer:
    """Runs one restoration model over batches of images; see the module docstring."""

    def __init__(self, model: nn.Module, config: EngineConfig | None = None):
        self.config = config or EngineConfig()
        needed = int(getattr(model, "tile_overlap", 0))  # what the model says its tiles need
        if self.config.overlap < needed:
            self.config = replace(self.config, overlap=needed, tile=max(self.config.tile, 2 * needed + 8))
        self.device = resolve_device(self.config.device)
        self.batch_tiles = self.config.batch_tiles or (16 if self.device.type == "cuda" else 1)
        self.dtype = resolve_dtype(self.config.dtype, self.device)
        self.align = int(getattr(model, "alignment", 1))  # the model's downsampling factor
        model = model.eval().to(self.device)
        if self.config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model, dynamic=False) if self.config.compile else model

    @torch.inference_mode()
    def _forward(
        self, batch: torch.Tensor, supplied: torch.Tensor | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        x = batch.to(self.device, non_blocking=True)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        extra = () if supplied is None else (supplied.to(self.device, non_blocking=True),)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            restored, mask_logits = self.model(x, *extra)
        restored = restored.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        return restored, torch.sigmoid(mask_logits.float())[:, 0].cpu().numpy()

    def restore(
        self, images: list[np.ndarray | torch.Tensor], masks: list[np.ndarray | None] | None = None
    ) -> list[Result]:
        """Restore each image; results keep the input's size, channels and dtype. An image is
        a numpy array, or a uint8 [H, W, C] tensor on any device (a JPEG decoded on the GPU).
        ``masks`` (one per image, or None) are a curator's own damage masks [H, W] (nonzero =
        damaged), used instead of the model's detector; only models that take a mask accept them."""
        originals = [img if isinstance(img, torch.Tensor) else np.asarray(img) for img in images]
        arrays = [_as_hwc(img) for img in originals]
        masks = list(masks) if masks is not None else [None] * len(arrays)
        if any(m is not None for m in masks) and not takes_mask(self.model):
            raise ValueError(
                f"{type(self.model).__name__} cannot restore with a supplied mask (a staged pipeline can)"
            )
        canvases = [
            _Canvas(i, a, _scale(_dtype(a)), self.config, self.align, _mask_array(m, a))
            for i, (a, m) in enumerate(zip(arrays, masks, strict=True))
        ]
        for batch in self._batches(canvases):
            patches = [canvases[t.image].patch(t) for t in batch]
            if all(p.device.type == "cpu" for p in patches):
                tensors = torch.stack(patches)
                if self.device.type == "cuda":
                    tensors = tensors.pin_memory()
            else:  # some already on the device: gather there
                tensors = torch.stack([p.to(self.device, non_blocking=True) for p in patches])
            given = canvases[batch[0].image].given is not None  # batches never mix (see _batches)
            supplied = torch.stack([canvases[t.image].patch_mask(t) for t in batch]) if given else None
            restored, out_masks = self._forward(tensors, supplied)
            for t, rgb, m in zip(batch, restored, out_masks, strict=True):
                canvases[t.image].add(t, rgb, m)
        return [
            Result(c.out.reshape(tuple(o.shape)), c.mask) for o, c in zip(originals, canvases, strict=True)
        ]

    def process(
        self, images: list[np.ndarray | torch.Tensor], masks: list[np.ndarray | None] | None = None
    ) -> list[Result]:
        """The interface every engine shares (restorers and styles): ``restore``."""
        return self.restore(images, masks)

    def _batches(self, canvases: list[_Canvas]) -> Iterator[list[_Tile]]:
        """Tiles of equal shape, from several images at a time, row after row."""
        pending: dict[tuple[int, int], list[_Tile]] = {}
        for tiles in _interleave([c.tiles() for c in canvases]):
            for t in tiles:
                key = (t.h, t.w, canvases[t.image].given is not None)  # supplied masks batch apart
                group = pending.setdefault(key, [])
                group.append(t)
                if len(group) == self.batch_tiles:
                    yield pending.pop(key)
        yield from (g for g in pending.values() if g)


def takes_mask(model: nn.Module) -> bool:
    """Whether a model's forward takes a supplied damage mask (the staged pipeline does)."""
    model = getattr(model, "_orig_mod", model)  # through torch.compile
    return "mask" in inspect.signature(model.forward).parameters


def _mask_array(mask: np.ndarray | None, image: np.ndarray | torch.Tensor) -> np.ndarray | None:
    """A supplied mask as float32 [H, W] in {0, 1} (above half of its range: damaged), refused
    unless it has the image's size."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    mask = mask[..., 0] if mask.ndim == 3 else mask
    if mask.shape != tuple(image.shape[:2]):
        raise ValueError(
            f"the supplied mask is {mask.shape[1]}x{mask.shape[0]}, the image {image.shape[1]}x{image.shape[0]}"
        )
    if mask.dtype == bool:
        return mask.astype(np.float32)
    half = 0.5 if np.issubdtype(mask.dtype, np.floating) else np.iinfo(mask.dtype).max / 2  # white is damage
    return (mask > half).astype(np.float32)


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
    """Blends the tiles of one image in a band one tile-row high; rows no later tile touches
    are converted to the output's type at once, so the float buffers never hold the scan."""

    def __init__(
        self,
        index: int,
        image: np.ndarray | torch.Tensor,
        scale: float,
        config: EngineConfig,
        align: int = 1,
        given: np.ndarray | None = None,
    ):
        self.index, self.image, self.scale, self.overlap, self.given = (
            index,
            image,
            scale,
            config.overlap,
            given,
        )
        self.h, self.w = image.shape[:2]
        self.ys, self.th = _layout(self.h, config.tile, config.overlap, align)
        self.xs, self.tw = _layout(self.w, config.tile, config.overlap, align)
        self.out = np.empty(tuple(image.shape), dtype=_dtype(image))
        self.mask = np.empty((self.h, self.w), dtype=np.float32)
        self.row, self.added, self.top = 0, 0, 0
        self.band = self._new_band()

    def _new_band(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.zeros((self.th, self.w, 3), np.float32),
            np.zeros((self.th, self.w), np.float32),
            np.zeros((self.th, self.w), np.float32),
        )

    def tiles(self) -> Iterator[list[_Tile]]:
        """One row of tiles at a time."""
        for r, y in enumerate(self.ys):
            yield [_Tile(self.index, r, y, x, self.th, self.tw) for x in self.xs]

    def patch(self, t: _Tile) -> torch.Tensor:
        return _to_rgb(self.image[t.y : t.y + t.h, t.x : t.x + t.w], self.scale)

    def patch_mask(self, t: _Tile) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.given[t.y : t.y + t.h, t.x : t.x + t.w]))[None]

    def add(self, t: _Tile, rgb: np.ndarray, mask: np.ndarray) -> None:
        if t.row != self.row:  # tiles of one image have one shape, so batches keep their order
            raise RuntimeError(f"tile of row {t.row} arrived while row {self.row} is open")
        wy = _ramp(t.h, self.overlap, t.y > 0, t.y + t.h < self.h)
        wx = _ramp(t.w, self.overlap, t.x > 0, t.x + t.w < self.w)
        w = wy[:, None] * wx[None, :]
        band_rgb, band_mask, band_weight = self.band
        sl = (slice(t.y - self.top, t.y - self.top + t.h), slice(t.x, t.x + t.w))
        band_rgb[sl] += rgb * w[..., None]
        band_mask[sl] += mask * w
        band_weight[sl] += w
        self.added += 1
        if self.added == len(self.xs):
            self._close_row()

    def _close_row(self) -> None:
        """Finish the rows above the next tile-row's start and slide the band down to it."""
        last = self.row == len(self.ys) - 1
        end = self.h if last else self.ys[self.row + 1]
        n = end - self.top
        rgb, mask, weight = (a[:n] for a in self.band)
        np.maximum(weight, 1e-8, out=weight)
        rgb /= weight[..., None]
        self.out[self.top : end] = _from_rgb(rgb, self.image[self.top : end], self.scale)
        np.divide(mask, weight, out=self.mask[self.top : end])
        if not last:
            old, self.band = self.band, self._new_band()
            keep = self.top + self.th - end
            for a, b in zip(self.band, old, strict=True):
                a[:keep] = b[n : n + keep]
            self.top = end
        self.row, self.added = self.row + 1, 0
