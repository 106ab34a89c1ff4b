"""JPEG decoding on the GPU (nvJPEG through torchvision) where a CUDA worker can use it.

torchvision is optional and imported lazily: the registry's torchvision is a CUDA build that
does not import beside a CPU torch, so every other path decodes with Pillow. The decoded tensor
stays on the GPU and goes to the engine as it is ([H, W, C] uint8), which spares the host the
decode and the copy of a large scan.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def _decode_jpeg():  # noqa: ANN202 (torchvision's function, when it imports)
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except Exception:  # not installed, or a build that does not match this torch
        return None
    return decode_jpeg, ImageReadMode


def gpu_jpeg_available(device: torch.device) -> bool:
    """True when JPEGs can be decoded on ``device``: a CUDA device and a working torchvision."""
    return device.type == "cuda" and torch.cuda.is_available() and _decode_jpeg() is not None


def decode_jpeg_on(data: bytes, grey: bool, device: torch.device) -> torch.Tensor:
    """Decode 8-bit JPEG bytes on ``device`` to uint8 [H, W] (grey) or [H, W, 3], the shapes
    Pillow gives; EXIF orientation is not applied, as with Pillow's decode used elsewhere."""
    found = _decode_jpeg()
    if found is None or device.type != "cuda":
        raise RuntimeError(f"GPU JPEG decoding is not available on {device}")
    decode_jpeg, mode = found
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    chw = decode_jpeg(raw, mode=mode.GRAY if grey else mode.RGB, device=device)
    return chw[0] if grey else chw.permute(1, 2, 0)
