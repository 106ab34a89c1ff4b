"""The inference engine: tiled, batched restoration of images of any size, mode and bit depth.

Images are cut into overlapping tiles, as few as cover the image with the overlap asked for and
spread evenly; tiles of the same shape from several images share a batch; the outputs are
blended with feathered weights that are zero in the outer quarter of each overlap, so a pixel is
only taken from tiles that saw enough context around it. The model's memory (activations) is
bounded by the tile batch whatever the scan's size, and so is the blending: float accumulators
cover one row of tiles, and finished rows go straight into the output array (the input's dtype)
and the damage mask (uint8, or float32 when asked).

Everything between the input's pixels and the output's runs on the model's device: tiles go up
in their own type (uint8 is a quarter of float32) through reused (pinned) buffers, and are
blended there with weights divided beforehand so that they sum to one (a weighted sum, no
division, no weight canvas). On CUDA only finished rows come back, converted to the output's
type, without waiting; on a CPU the part of a tile no other tile covers is written to the output
at once. ``NullModel`` measures what this costs (bench/engine.py --null-model).

A model that enlarges (super-resolution) says so with a ``scale`` attribute (2, 4): tiles are cut
from the input as usual, and their outputs, ``scale`` times larger, are blended on an output
canvas ``scale`` times the input's size with weights (and overlaps) scaled alike, a band at a time.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections import OrderedDict
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
    # 0: by device: on CUDA as many as half the free memory holds at the model's measured
    # activation size per pixel (at most 64); on a CPU 1, where activations share RAM and cache
    batch_tiles: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    dtype: str = "auto"  # auto (bf16/fp16 on CUDA, float32 on CPU), float32, bfloat16, float16
    channels_last: bool = True  # NHWC: faster convolutions on CUDA and with oneDNN on CPU
    # torch.compile the model (worth it for long runs on one tile shape); a string is the mode,
    # e.g. "reduce-overhead" (CUDA graphs at the fixed tile shapes)
    compile: bool | str = False
    mask: str = "uint8"  # the damage mask's type in results: uint8 (0..255) or float32 (0..1)

    def __post_init__(self) -> None:
        if self.overlap is None:
            object.__setattr__(self, "overlap", min(64, self.tile // 4))
        if not 0 <= self.overlap < self.tile // 2:
            raise ValueError(f"overlap {self.overlap} must be between 0 and half the tile ({self.tile})")
        if self.mask not in ("uint8", "float32"):
            raise ValueError(f"mask {self.mask!r} must be uint8 or float32")


@dataclass
class Result:
    # the input's shape (× the model's scale in height and width) and dtype (RGB for a grey input styled)
    image: np.ndarray
    # [H, W] probability of damage, uint8 0..255 (EngineConfig.mask "float32": 0..1); None from a style
    # or a model that finds no damage (an enlarger)
    mask: np.ndarray | None
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


def _weights(starts: list[int], size: int, length: int, overlap: int) -> list[np.ndarray]:
    """Each tile's 1-D weights along one axis, divided by the sum over all tiles: tiles form a grid
    and weights are separable, so the products of these sum to one at every pixel, and blending is
    a weighted sum with no division and no weight canvas."""
    ramps = [_ramp(size, overlap, s > 0, s + size < length) for s in starts]
    total = np.zeros(length, np.float32)
    for s, r in zip(starts, ramps, strict=True):
        total[s : s + size] += r
    np.maximum(total, 1e-8, out=total)
    return [r / total[s : s + size] for s, r in zip(starts, ramps, strict=True)]


def tiles_for_budget(
    free_bytes: int, bytes_per_pixel: float, tile: int, share: float = 0.5, most: int = 64
) -> int:
    """How many tiles of ``tile``² a batch may hold: ``share`` of the free device memory over the
    model's activation memory per pixel, between 1 and ``most``."""
    fits = int(free_bytes * share // max(bytes_per_pixel * tile * tile, 1.0))
    return max(1, min(most, fits))


@torch.inference_mode()
def activation_bytes_per_pixel(
    model: nn.Module, device: torch.device, dtype: torch.dtype, side: int = 256
) -> float:
    """The model's peak activation memory per input pixel on a CUDA device: the slope between two
    tile sizes after a warm-up, so one-time allocations (workspaces, autocast's weight copies) do
    not count as per-pixel."""

    def peak(s: int) -> int:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        x = torch.rand(2, 3, s, s, device=device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = model(x)
        del out, x
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base

    peak(side)  # warm-up
    small, large = peak(side), peak(side * 3 // 2)
    return max(large - small, 1) / (2 * ((side * 3 // 2) ** 2 - side * side))


@dataclass
class _Tile:
    image: int
    row: int
    col: int
    y: int
    x: int
    h: int
    w: int


class _Staging:
    """Reused input buffers, one set per batch shape: a host buffer the tiles are gathered into
    (pinned on CUDA), its copy on the device, and the float batch the model reads. On CUDA two
    sets take turns, so the host fills one while the other is still being copied up; a set is only
    refilled once its upload has finished. ``allocations`` counts the sets made."""

    KEPT = 3  # tile shapes kept (a worker meets scans of every size: the oldest shape is dropped)

    def __init__(self, device: torch.device, batch: int, scale: int = 1):
        self.device, self.cuda, self.batch, self.scale = device, device.type == "cuda", batch, scale
        self.sets: OrderedDict[tuple, list[dict]] = OrderedDict()
        self.turn: dict[tuple, int] = {}
        self.allocations = 0

    def take(self, shape: tuple[int, ...], dtype: torch.dtype, on_device: bool = False) -> dict:
        """The set for tiles of ``shape`` (h, w, channels), each buffer ``batch`` tiles long: a
        batch uses the first of them, so a shorter last batch needs no set of its own."""
        key = (shape, dtype, on_device)
        sets = self.sets.setdefault(key, [])
        self.sets.move_to_end(key)
        while len(self.sets) > self.KEPT:
            old, dropped = self.sets.popitem(last=False)
            for s in dropped:  # not while an upload still reads it
                if s["sent"] is not None:
                    s["sent"].synchronize()
            self.turn.pop(old, None)
        turn = self.turn.get(key, 0)
        self.turn[key] = (turn + 1) % (2 if self.cuda else 1)
        if turn < len(sets):
            s = sets[turn]
            if s["sent"] is not None:
                s["sent"].synchronize()  # the host buffer is read by an upload still in flight
            return s
        b, (h, w, c) = self.batch, shape
        host = device_buffer = None  # on a CPU, tiles go straight into the float batch
        if self.cuda or on_device:
            host = device_buffer = torch.empty((b, h, w, c), dtype=dtype, device=self.device)
        if self.cuda and not on_device:
            host = torch.empty((b, h, w, c), dtype=dtype, pin_memory=True)
        batch = torch.empty((b, 3, h, w), device=self.device).contiguous(memory_format=torch.channels_last)
        probability = torch.empty((b, h * self.scale, w * self.scale), device=self.device)
        sets.append({"host": host, "device": device_buffer, "float": batch, "p": probability, "sent": None})
        self.allocations += 1
        return sets[-1]

    def upload(self, s: dict, n: int) -> torch.Tensor:
        """The first ``n`` tiles of the set's host buffer, on the device."""
        if s["host"] is not s["device"]:
            s["device"][:n].copy_(s["host"][:n], non_blocking=True)
            s["sent"] = torch.cuda.Event()
            s["sent"].record(torch.cuda.current_stream(self.device))
        return s["device"][:n]


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype)).dtype


def _host_view(array: np.ndarray) -> torch.Tensor:
    """A tensor reading a numpy array in place (the engine only reads its inputs, so a read-only
    array is fine: torch's warning about writes to it is silenced), or a copy of a flipped view."""
    if any(step < 0 for step in array.strides):
        array = np.ascontiguousarray(array)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


class Restorer:
    """Runs one restoration model over batches of images; see the module docstring."""

    def __init__(self, model: nn.Module, config: EngineConfig | None = None):
        self.config = config or EngineConfig()
        needed = int(getattr(model, "tile_overlap", 0))  # what the model says its tiles need
        if self.config.overlap < needed:
            self.config = replace(self.config, overlap=needed, tile=max(self.config.tile, 2 * needed + 8))
        self.device = resolve_device(self.config.device)
        self.dtype = resolve_dtype(self.config.dtype, self.device)
        self.align = int(getattr(model, "alignment", 1))  # the model's downsampling factor
        # An enlarging model (super-resolution) declares its factor: outputs are ``scale`` times the
        # input's size, blended on an output canvas that much larger, still a band at a time.
        self.scale = getattr(model, "scale", 1)
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale < 1:
            raise ValueError(
                f"a model's scale (its enlargement) must be a whole number >= 1, not {self.scale!r}"
            )
        model = model.eval().to(self.device)
        if self.config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.batch_tiles = self.config.batch_tiles or self._batch_for_memory(model)
        if self.config.compile:
            mode = None if self.config.compile is True else self.config.compile
            model = torch.compile(model, dynamic=False, mode=mode)
        self.model = model
        self.staging = _Staging(self.device, self.batch_tiles, self.scale)
        self.bands = _Bands(self.device)
        # On a CPU, what only one tile covers goes straight to the output; False blends everything in
        # the band, as on CUDA (tests run that path here)
        self.direct = True
        self.finds_damage = True  # False once the model has given an image alone (no damage map)

    def _batch_for_memory(self, model: nn.Module) -> int:
        """On CUDA, as many tiles as half the free memory holds at the model's measured activation
        size; on a CPU one (activations share RAM and cache with everything else: measured best)."""
        if self.device.type != "cuda":
            return 1
        per_pixel = activation_bytes_per_pixel(model, self.device, self.dtype)
        free, _ = torch.cuda.mem_get_info(self.device)
        return tiles_for_budget(free, per_pixel, self.config.tile)

    @torch.inference_mode()
    def _forward(
        self, x: torch.Tensor, probability: torch.Tensor, supplied: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Restored tiles clamped to [0, 1], and damage probabilities written into ``probability``
        (a reused buffer), float32 on the device."""
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        extra = () if supplied is None else (supplied.to(self.device, non_blocking=True),)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            out = self.model(x, *extra)
        # A restorer gives (image, damage logits); a model that only makes an image (an enlarger,
        # a user's Real-ESRGAN) gives the image, and finds no damage.
        restored, mask_logits = out if isinstance(out, tuple) else (out, None)
        self.finds_damage = mask_logits is not None
        restored = restored.float().clamp_(0, 1)  # the model's own output (or its input): ours to change
        # ``restored`` (perhaps a CUDA graph's output buffer) is used up before the model runs again
        if mask_logits is None:
            return restored, probability.zero_()
        return restored, torch.sigmoid(mask_logits[:, 0], out=probability)

    @torch.inference_mode()
    def _upload(self, canvases: list[_Canvas], batch: list[_Tile]) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's tiles as float [B, 3, h, w] in [0, 1] on the device: gathered in their own
        type (uint8 is a quarter of float32) into a reused buffer, sent up, converted there; and the
        reused buffer [B, h, w] its damage probabilities go into."""
        first = canvases[batch[0].image]
        source = first.image
        channels = 1 if source.shape[2] == 1 else 3
        on_device = isinstance(source, torch.Tensor) and source.device.type != "cpu"
        dtype = torch.uint8 if isinstance(source, torch.Tensor) else _torch_dtype(source.dtype)
        if dtype == torch.float64:
            dtype = torch.float32
        elif dtype == torch.uint16:  # few operators take uint16 on CUDA; int32 is still half of float
            dtype = torch.int32
        n = len(batch)
        s = self.staging.take((batch[0].h, batch[0].w, channels), dtype, on_device)
        probability, batch_float = s["p"][:n], s["float"][:n]  # slices stay channels_last
        # on a CPU the tiles are gathered straight into the float batch (a grey tile to each channel)
        gather = s["host"] if s["host"] is not None else batch_float.permute(0, 2, 3, 1)
        for i, t in enumerate(batch):
            part = canvases[t.image].image[t.y : t.y + t.h, t.x : t.x + t.w, :channels]
            gather[i].copy_(part if isinstance(part, torch.Tensor) else _host_view(part))
        if s["host"] is None:
            return (batch_float if first.scale == 1.0 else batch_float.mul_(1.0 / first.scale)), probability
        tiles = self.staging.upload(s, n).permute(0, 3, 1, 2)
        if channels == 1:  # grey: the model sees it as RGB
            tiles = tiles.expand(-1, 3, -1, -1)
        return batch_float.copy_(tiles).mul_(1.0 / first.scale), probability  # 2x mul(out=) (measured)

    @torch.inference_mode()
    def restore(
        self, images: list[np.ndarray | torch.Tensor], masks: list[np.ndarray | None] | None = None
    ) -> list[Result]:
        """Restore each image; results keep the input's size, channels and dtype. An image is
        a numpy array, or a uint8 [H, W, C] tensor on any device (a JPEG decoded on the GPU).
        ``masks`` (one per image, or None) are a curator's own damage masks [H, W] (nonzero =
        damaged), used instead of the model's detector; only models that take a mask accept them."""
        if self.device.type == "cuda":  # copies and events on this engine's device, whichever is current
            with torch.cuda.device(self.device):
                return self._restore(images, masks)
        return self._restore(images, masks)

    def _restore(
        self, images: list[np.ndarray | torch.Tensor], masks: list[np.ndarray | None] | None
    ) -> list[Result]:
        originals = [img if isinstance(img, torch.Tensor) else np.asarray(img) for img in images]
        arrays = [_as_hwc(img) for img in originals]
        masks = list(masks) if masks is not None else [None] * len(arrays)
        if any(m is not None for m in masks) and not takes_mask(self.model):
            raise ValueError(
                f"{type(self.model).__name__} cannot restore with a supplied mask (a staged pipeline can)"
            )
        canvases = [
            _Canvas(
                i,
                a,
                self.config,
                self.device,
                self.bands,
                self.align,
                _mask_array(m, a),
                self.direct,
                self.scale,
            )
            for i, (a, m) in enumerate(zip(arrays, masks, strict=True))
        ]
        for batch in self._batches(canvases):
            x, probability = self._upload(canvases, batch)
            given = canvases[batch[0].image].given is not None  # batches never mix (see _batches)
            supplied = torch.stack([canvases[t.image].patch_mask(t) for t in batch]) if given else None
            restored, probability = self._forward(x, probability, supplied)
            for t, rgb, p in zip(batch, restored, probability, strict=True):
                canvases[t.image].add(t, rgb, p)
        for c in canvases:
            c.finish()
        return [
            Result(c.out.reshape(c.out.shape[:2] + tuple(o.shape[2:])), c.mask if self.finds_damage else None)
            for o, c in zip(originals, canvases, strict=True)
        ]

    def process(
        self, images: list[np.ndarray | torch.Tensor], masks: list[np.ndarray | None] | None = None
    ) -> list[Result]:
        """The interface every engine shares (restorers and styles): ``restore``."""
        return self.restore(images, masks)

    def _batches(self, canvases: list[_Canvas]) -> Iterator[list[_Tile]]:
        """Tiles of equal shape and pixel type, from several images at a time, row after row."""
        pending: dict[tuple, list[_Tile]] = {}
        for tiles in _interleave([c.tiles() for c in canvases]):
            for t in tiles:
                c = canvases[t.image]
                # supplied masks batch apart; so do pixel types and grey (they gather differently)
                key = (
                    t.h,
                    t.w,
                    c.given is not None,
                    str(_dtype(c.image)),
                    c.image.shape[2] == 1,
                    c.on_device,
                )
                group = pending.setdefault(key, [])
                group.append(t)
                if len(group) == self.batch_tiles:
                    yield pending.pop(key)
        yield from (g for g in pending.values() if g)


def takes_mask(model: nn.Module) -> bool:
    """Whether a model's forward takes a supplied damage mask (the staged pipeline does)."""
    model = getattr(model, "_orig_mod", model)  # through torch.compile
    said = getattr(model, "takes_mask", None)  # a wrapper says whether the model inside does
    return said if isinstance(said, bool) else "mask" in inspect.signature(model.forward).parameters


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


class _Bands:
    """Blending bands kept for the next image of the same width and tile height: a fresh band
    would cost its page faults again (as much as filling it, measured on a CPU). At most ``KEPT``
    are kept, the last given back."""

    KEPT = 8

    def __init__(self, device: torch.device):
        self.device, self.free = device, OrderedDict()

    def take(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        kept = self.free.get((h, w))
        if kept:
            return kept.pop()
        return torch.empty((h, w, 3), device=self.device), torch.empty((h, w), device=self.device)

    def give(self, bands: tuple[torch.Tensor, torch.Tensor]) -> None:
        key = tuple(bands[1].shape)
        self.free.setdefault(key, []).append(bands)
        self.free.move_to_end(key)
        while sum(len(v) for v in self.free.values()) > self.KEPT:
            oldest = next(iter(self.free))
            self.free[oldest].pop(0)
            if not self.free[oldest]:
                del self.free[oldest]


class _Canvas:
    """Blends the tiles of one image on the model's device, in a band one tile-row high. The band
    holds ``scale`` × the weighted sum plus 0.5 for integer outputs, so converting a finished row is
    one truncating cast; rows no later tile touches are converted there, in the output's type, and
    only they come back to the host (through pinned memory on CUDA, without waiting)."""

    def __init__(
        self,
        index: int,
        image: np.ndarray | torch.Tensor,
        config: EngineConfig,
        device: torch.device,
        bands: _Bands,
        align: int = 1,
        given: np.ndarray | None = None,
        direct: bool = True,
        enlarge: int = 1,
    ):
        self.index, self.image, self.device, self.given = index, image, device, given
        dtype = _dtype(image)
        self.scale = _scale(dtype)
        self.on_device = isinstance(image, torch.Tensor) and image.device.type != "cpu"
        # Tiles are cut from the input (``in_ys``, ``in_th``...); everything else is in the output's
        # pixels, ``enlarge`` times the input's (an enlarging model's factor; 1 otherwise).
        self.enlarge = enlarge
        h, w = image.shape[:2]
        self.in_ys, self.in_th = _layout(h, config.tile, config.overlap, align)
        self.in_xs, self.in_tw = _layout(w, config.tile, config.overlap, align)
        self.h, self.w, overlap = h * enlarge, w * enlarge, config.overlap * enlarge
        self.ys, self.th = [y * enlarge for y in self.in_ys], self.in_th * enlarge
        self.xs, self.tw = [x * enlarge for x in self.in_xs], self.in_tw * enlarge
        self.wy = [
            torch.from_numpy(w).to(device)[:, None, None] for w in _weights(self.ys, self.th, self.h, overlap)
        ]
        # across a row as [1, w, 3], repeated over the channels: broadcasting over the innermost
        # dimension is four times slower on a CPU (measured)
        wx = [np.repeat(w[None, :, None], 3, axis=2) for w in _weights(self.xs, self.tw, self.w, overlap)]
        integer = np.issubdtype(dtype, np.integer)
        self.offset = 0.5 if integer else 0.0  # + 0.5 then truncation: rounding to nearest
        self.out_dtype = _torch_dtype(dtype)
        if device.type == "cuda" and self.out_dtype == torch.uint16:
            self.out_dtype = torch.int32  # cast on the host: few CUDA operators take uint16
        self.mask_float = config.mask == "float32"
        self.mask_scale, self.mask_offset = (1.0, 0.0) if self.mask_float else (255.0, 0.5)
        self.out = np.empty((self.h, self.w, image.shape[2]), dtype=dtype)
        self.mask = np.empty((self.h, self.w), dtype=np.float32 if self.mask_float else np.uint8)
        self.out_view, self.mask_view = torch.from_numpy(self.out), torch.from_numpy(self.mask)
        self.bands = bands
        self.rgb, self.damage = bands.take(self.th, self.w)  # written before read: see add
        # The band holds the weighted sum of (value × scale + offset), which is the sum × scale +
        # offset since the weights sum to one: a finished row is one cast away from the output.
        self.wx = [
            (torch.from_numpy(w * self.scale).to(device), torch.from_numpy(w * self.offset).to(device))
            for w in wx
        ]
        self.mask_wx = [
            (
                torch.from_numpy(w[0, :, 0] * self.mask_scale).to(device),
                torch.from_numpy(w[0, :, 0] * self.mask_offset).to(device),
            )
            for w in wx
        ]
        self.row, self.added, self.top = 0, 0, 0
        self.keep, self.seen = 0, 0  # band rows carried from the last tile-row; columns written in this one
        self.direct = direct and device.type == "cpu"  # the output arrays are on the device: write at once
        self.pending: list[tuple] = []  # rows on their way to the host (CUDA)

    def tiles(self) -> Iterator[list[_Tile]]:
        """One row of tiles at a time (in the input's pixels)."""
        for r, y in enumerate(self.in_ys):
            yield [_Tile(self.index, r, c, y, x, self.in_th, self.in_tw) for c, x in enumerate(self.in_xs)]

    def patch_mask(self, t: _Tile) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.given[t.y : t.y + t.h, t.x : t.x + t.w]))[None]

    def add(self, t: _Tile, rgb: torch.Tensor, probability: torch.Tensor) -> None:
        """Add one restored tile ([3, h, w] in [0, 1]) and its damage probabilities ([h, w])."""
        if t.row != self.row:  # tiles of one image have one shape, so batches keep their order
            raise RuntimeError(f"tile of row {t.row} arrived while row {self.row} is open")
        if self.enlarge != 1:  # where its output goes
            t = replace(t, y=self.ys[t.row], x=self.xs[t.col], h=self.th, w=self.tw)
        wy = self.wy[t.row]
        # the tile's own outputs, in place: (value × scale + offset) × its weight across the row
        hwc, (gain, lift), (mask_gain, mask_lift) = rgb.permute(1, 2, 0), self.wx[t.col], self.mask_wx[t.col]
        torch.addcmul(lift, hwc, gain, out=hwc)
        torch.addcmul(mask_lift, probability, mask_gain, out=probability)
        # The band's rows carried from the last tile-row, and its columns the row's earlier tiles
        # wrote, are added to; the rest is written: no band is ever cleared. On a CPU the part only
        # this tile covers (its weight is exactly one there) goes straight to the output instead.
        keep, seen = self.keep, min(max(self.seen - t.x, 0), t.w)
        own_rows, own_cols = self._own(t)
        direct = self.direct and own_rows > keep and own_cols > seen
        for band, tile, w in ((self.rgb, hwc, wy), (self.damage, probability, wy[..., 0])):
            band = band[:, t.x : t.x + t.w]  # the band starts at this tile-row (t.y == self.top)
            if keep:
                band[:keep].addcmul_(tile[:keep], w[:keep])
            if seen:
                band[keep:, :seen].addcmul_(tile[keep:, :seen], w[keep:])
            if seen < t.w and not direct:
                torch.mul(tile[keep:, seen:], w[keep:], out=band[keep:, seen:])
            elif seen < t.w:  # around the part only this tile covers
                if own_cols < t.w:
                    torch.mul(
                        tile[keep:own_rows, own_cols:], w[keep:own_rows], out=band[keep:own_rows, own_cols:]
                    )
                if own_rows < t.h:
                    torch.mul(tile[own_rows:, seen:], w[own_rows:], out=band[own_rows:, seen:])
        if direct:
            rows, cols = slice(keep, own_rows), slice(seen, own_cols)
            at = (slice(t.y + keep, t.y + own_rows), slice(t.x + seen, t.x + own_cols))
            self._put(at, hwc[rows, cols], probability[rows, cols])
        self.seen = t.x + t.w
        self.added += 1
        if self.added == len(self.xs):
            self._close_row()

    def _own(self, t: _Tile) -> tuple[int, int]:
        """How many of a tile's rows and columns no later tile-row, and no later tile in its row,
        covers."""
        rows = t.h if t.row == len(self.ys) - 1 else self.ys[t.row + 1] - t.y
        cols = t.w if t.col == len(self.xs) - 1 else self.xs[t.col + 1] - t.x
        return rows, cols

    def _finished(self, rgb: torch.Tensor) -> torch.Tensor:
        """Blended floats as the output's channels (grey: their mean), in range."""
        if self.out.shape[2] == 1:
            rgb = rgb.mean(dim=2, keepdim=True)
        if self.offset == 0.0:  # float output: no rounding, but float error may step outside [0, 1]
            rgb = rgb.clamp(0.0, 1.0)
        return rgb

    def _put(self, at: tuple[slice, slice], rgb: torch.Tensor, damage: torch.Tensor) -> None:
        """Finished floats into the output arrays, converted on the way (CPU): ``copy_`` truncates,
        and they hold value × scale + 0.5, so they are rounded."""
        rgb = self._finished(rgb)
        self.out_view[at[0], at[1], : rgb.shape[2]].copy_(rgb)
        self.mask_view[at].copy_(damage)

    def _close_row(self) -> None:
        """Finish the rows above the next tile-row's start and slide the band down to it."""
        last = self.row == len(self.ys) - 1
        end = self.h if last else self.ys[self.row + 1]
        n = end - self.top
        if not self.direct:
            self._deliver(self.top, end, self.rgb[:n], self.damage[:n])
        else:  # only what tiles share: the rows the last tile-row covered, and the seams between tiles
            carried = min(self.keep, n)
            if carried:
                self._put(
                    (slice(self.top, self.top + carried), slice(None)),
                    self.rgb[:carried],
                    self.damage[:carried],
                )
            if carried < n:
                rows = slice(carried, n)
                for x, following in zip(self.xs, self.xs[1:], strict=False):
                    cols = slice(following, x + self.tw)
                    self._put(
                        (slice(self.top + carried, end), cols), self.rgb[rows, cols], self.damage[rows, cols]
                    )
        if not last:
            keep = self.top + self.th - end
            if keep:
                for band in (self.rgb, self.damage):
                    band[:keep].copy_(band[n : n + keep].clone() if n < keep else band[n : n + keep])
            self.top, self.keep = end, keep
        self.row, self.added, self.seen = self.row + 1, 0, 0

    def _deliver(self, top: int, end: int, rgb: torch.Tensor, damage: torch.Tensor) -> None:
        """Finished rows of the band, whole: on CUDA converted on the device, sent to pinned memory
        without waiting, and put into the output when they have landed."""
        if self.device.type != "cuda":
            self._put((slice(top, end), slice(None)), rgb, damage)
            return
        rgb, damage = (
            self._finished(rgb).to(self.out_dtype),
            damage.to(self.mask_view.dtype),
        )  # a quarter of the bytes
        host = tuple(torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in (rgb, damage))
        host[0].copy_(rgb, non_blocking=True)
        host[1].copy_(damage, non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(self.device))
        self.pending.append((done, host, top, end))
        while self.pending and self.pending[0][0].query():
            self._land()

    def _land(self) -> None:
        done, (rgb, damage), top, end = self.pending.pop(0)
        done.synchronize()
        self.out_view[top:end, :, : rgb.shape[2]].copy_(rgb)
        self.mask_view[top:end].copy_(damage)

    def finish(self) -> None:
        """Wait for the rows still on their way and put the input's alpha back."""
        while self.pending:
            self._land()
        if self.out.shape[2] == 4:
            alpha = self.image[..., 3]
            alpha = alpha.cpu().numpy() if isinstance(alpha, torch.Tensor) else alpha
            if self.enlarge != 1:  # alpha is a matte, not a picture: enlarged by repeating its pixels
                alpha = np.repeat(np.repeat(alpha, self.enlarge, axis=0), self.enlarge, axis=1)
            self.out[..., 3] = alpha
        self.bands.give((self.rgb, self.damage))
        self.rgb = self.damage = None


class NullModel(nn.Module):
    """A model that returns its input and no damage: what the engine costs on its own (benchmarks)."""

    def __init__(self):
        super().__init__()
        self._zeros: dict[tuple, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (x.shape[0], *x.shape[2:], x.device)
        if key not in self._zeros:  # logits a model computes are its own, contiguous tensor
            self._zeros[key] = torch.zeros(x.shape[0], 1, *x.shape[2:], device=x.device)
        return x, self._zeros[key]
