"""Position-defined random fields: grain, paper texture, spots, vignettes and plate edges.

Every value is a function of a pixel's position in the *whole* image (and a seed), never of the
tile it is computed in: a hash of integer coordinates gives white noise, a hash of a coarse
lattice interpolated smoothly gives value noise. So a style applied tile by tile, or band by
band, gives exactly the image it gives in one piece, without seams, at any scan size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class Placement:
    """Where a tile lies: its top-left corner in the whole image, and the whole image's size."""

    y0: int
    x0: int
    height: int
    width: int

    @staticmethod
    def whole(img: torch.Tensor) -> Placement:
        return Placement(0, 0, img.shape[-2], img.shape[-1])


def _hash(y: torch.Tensor, x: torch.Tensor, seed: int) -> torch.Tensor:
    """A 32-bit integer hash of (y, x, seed) -> uniform floats in [0, 1). int64 arithmetic,
    masked to 32 bits after every step, so it is the same on any device."""
    h = (x * 0x27D4EB2D + y * 0x165667B1 + seed * 0x9E3779B1 + 0x7F4A7C15) & _MASK
    h = ((h ^ (h >> 15)) * 0x2C1B3C6D) & _MASK
    h = ((h ^ (h >> 12)) * 0x297A2D39) & _MASK
    h = h ^ (h >> 15)
    return h.to(torch.float32) / 4294967296.0


def _grid(y0: int, x0: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ys = torch.arange(y0, y0 + h, device=device, dtype=torch.int64)
    xs = torch.arange(x0, x0 + w, device=device, dtype=torch.int64)
    return ys[:, None].expand(h, w), xs[None, :].expand(h, w)


def white(at: Placement, h: int, w: int, seed: int, device: torch.device, pad: int = 0) -> torch.Tensor:
    """Uniform noise in [0, 1) for the tile's pixels (and ``pad`` pixels around them), [H, W]."""
    ys, xs = _grid(at.y0 - pad, at.x0 - pad, h + 2 * pad, w + 2 * pad, device)
    return _hash(ys, xs, seed)


def grain(at: Placement, h: int, w: int, seed: int, size: float, device: torch.device) -> torch.Tensor:
    """Zero-mean, unit-variance film grain [H, W]: white noise blurred to clumps of ``size``
    pixels. The blur reads noise beyond the tile's edge (it is defined everywhere), so there
    is no seam."""
    sigma = max(size / 2.0, 0.3)
    radius = max(1, math.ceil(2.5 * sigma))
    noise = white(at, h, w, seed, device, pad=radius) - 0.5
    k = torch.exp(
        -(torch.arange(-radius, radius + 1, device=device, dtype=torch.float32) ** 2) / (2 * sigma**2)
    )
    k = k / k.sum()
    out = F.conv2d(noise[None, None], k.view(1, 1, 1, -1))
    out = F.conv2d(out, k.view(1, 1, -1, 1))[0, 0]
    return out / (math.sqrt(1 / 12) * float(k.square().sum()))  # unit variance whatever the size


def value(at: Placement, h: int, w: int, seed: int, cell: float, device: torch.device) -> torch.Tensor:
    """Smooth value noise in [0, 1] with features about ``cell`` pixels wide, [H, W]."""
    ys = torch.arange(at.y0, at.y0 + h, device=device, dtype=torch.float64) / cell
    xs = torch.arange(at.x0, at.x0 + w, device=device, dtype=torch.float64) / cell
    y0, x0 = ys.floor(), xs.floor()
    fy, fx = (ys - y0).float(), (xs - x0).float()
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)  # smoothstep: no visible lattice
    iy, ix = y0.long()[:, None], x0.long()[None, :]

    def corner(dy: int, dx: int) -> torch.Tensor:
        return _hash((iy + dy).expand(h, w), (ix + dx).expand(h, w), seed)

    top = corner(0, 0) * (1 - fx) + corner(0, 1) * fx
    bottom = corner(1, 0) * (1 - fx) + corner(1, 1) * fx
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


def spots(
    at: Placement, h: int, w: int, seed: int, cell: int, density: float, radius: float, device: torch.device
) -> torch.Tensor:
    """Sparse round spots (foxing, dust, pits) in [0, 1], [H, W]: each ``cell``-pixel square holds
    at most one, with probability ``density``, wholly inside it, so a pixel depends only on its
    own square's hash."""
    ys, xs = _grid(at.y0, at.x0, h, w, device)
    cy, cx = torch.div(ys, cell, rounding_mode="floor"), torch.div(xs, cell, rounding_mode="floor")
    present = _hash(cy, cx, seed) < density
    r = radius * (0.5 + _hash(cy, cx, seed + 1))
    margin = torch.clamp(cell / 2 - r, min=0)
    centre_y = cy * cell + cell / 2 + (2 * _hash(cy, cx, seed + 2) - 1) * margin
    centre_x = cx * cell + cell / 2 + (2 * _hash(cy, cx, seed + 3) - 1) * margin
    d = torch.sqrt((ys - centre_y) ** 2 + (xs - centre_x) ** 2) / r
    return torch.where(present, torch.clamp(1 - d, 0, 1) ** 0.7, torch.zeros((), device=device))


def radius(at: Placement, h: int, w: int, device: torch.device) -> torch.Tensor:
    """Distance from the image's centre, 1.0 at the corners, [H, W]."""
    ys, xs = _grid(at.y0, at.x0, h, w, device)
    cy, cx = (at.height - 1) / 2, (at.width - 1) / 2
    return torch.sqrt(((ys - cy) / max(cy, 1)) ** 2 + ((xs - cx) / max(cx, 1)) ** 2) / math.sqrt(2)


def edge(at: Placement, h: int, w: int, device: torch.device) -> torch.Tensor:
    """Distance to the nearest border as a share of the short side, [H, W] (0 at the edge)."""
    ys, xs = _grid(at.y0, at.x0, h, w, device)
    d = torch.minimum(torch.minimum(ys, at.height - 1 - ys), torch.minimum(xs, at.width - 1 - xs))
    return d.float() / max(1, min(at.height, at.width))
