"""Structural damage: scratches, dust, cracks and tears. Each ``apply_x`` returns the damaged
image and the mask of the pixels it destroyed ([B, 1, H, W], 1 = damaged): the restorer's
second head learns to predict it. Geometry is sampled in coordinates relative to the image."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from restoration.degrade.tone import _gen, _seed


def _raster(h: int, w: int, points: torch.Tensor, width: int, device) -> torch.Tensor:
    """A [1, 1, H, W] mask of dense ``points`` (N x 2, relative x, y), ``width`` pixels thick."""
    mask = torch.zeros(h * w, device=device)
    x = (points[:, 0] * (w - 1)).round().long()
    y = (points[:, 1] * (h - 1)).round().long()
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    mask[(y[inside] * w + x[inside])] = 1.0
    mask = mask.view(1, 1, h, w)
    return _dilate(mask, width) if width > 1 else mask


def _dilate(mask: torch.Tensor, width: int) -> torch.Tensor:
    """Grow a mask with a round brush ``width`` pixels across (max-pooling would make squares)."""
    k = width | 1
    yy, xx = torch.meshgrid(torch.arange(k) - k // 2, torch.arange(k) - k // 2, indexing="ij")
    disc = ((xx**2 + yy**2) <= (k / 2) ** 2).float().to(mask.device).view(1, 1, k, k)
    return (F.conv2d(mask, disc, padding=k // 2) > 0).float()


def _polyline(vertices: list[list[float]], h: int, w: int) -> torch.Tensor:
    """Points every half pixel along straight segments between relative ``vertices``."""
    pts = []
    for (x0, y0), (x1, y1) in zip(vertices[:-1], vertices[1:], strict=False):
        n = max(2, int(2 * math.hypot((x1 - x0) * w, (y1 - y0) * h)))
        t = torch.linspace(0, 1, n)
        pts.append(torch.stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t], 1))
    return torch.cat(pts)


def _paint(img: torch.Tensor, mask: torch.Tensor, value, alpha: float) -> torch.Tensor:
    value = torch.as_tensor(value, dtype=img.dtype, device=img.device).view(1, -1, 1, 1)
    return img * (1 - alpha * mask) + value * alpha * mask


# -- scratches: thin bright or dark curves -------------------------------------------------------


def sample_scratches(rng: np.random.Generator, h: int, w: int) -> dict:
    scratches = []
    for _ in range(int(rng.integers(1, 6))):
        x0 = float(rng.uniform(0, 1))
        bend = float(rng.uniform(-0.1, 0.1))
        tilt = float(rng.uniform(-0.25, 0.25))
        y0, y1 = sorted(float(v) for v in rng.uniform(0, 1, 2))
        y1 = max(y1, y0 + 0.15)
        scratches.append(
            {
                "vertices": [[x0, y0], [x0 + tilt / 2 + bend, (y0 + y1) / 2], [x0 + tilt, y1]],
                "width": int(rng.integers(1, 3)),
                "value": float(rng.choice([rng.uniform(0.8, 1.0), rng.uniform(0.0, 0.2)])),
                "alpha": float(rng.uniform(0.7, 1.0)),
            }
        )
    if rng.random() < 0.5:  # scratches run with the film or across it
        for s in scratches:
            s["vertices"] = [[y, x] for x, y in s["vertices"]]
    return {"scratches": scratches}


def apply_scratches(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return _strokes(img, p["scratches"], _bezier)


def _strokes(img: torch.Tensor, strokes: list[dict], path) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint each stroke along ``path(vertices, h, w)``; the mask is the union of the strokes."""
    h, w = img.shape[-2:]
    total = torch.zeros(1, 1, h, w, device=img.device)
    for s in strokes:
        m = _raster(h, w, path(s["vertices"], h, w), s["width"], img.device)
        img = _paint(img, m, s["value"], s["alpha"])
        total = torch.maximum(total, m)
    return img, total.expand(img.shape[0], 1, h, w)


def _bezier(v: list[list[float]], h: int, w: int) -> torch.Tensor:
    (x0, y0), (x1, y1), (x2, y2) = v
    n = max(2, int(2 * (math.hypot((x2 - x0) * w, (y2 - y0) * h) + 1)))
    t = torch.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (torch.tensor(q) for q in v)
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


# -- dust and specks ---------------------------------------------------------------------------


def sample_dust(rng: np.random.Generator, h: int, w: int) -> dict:
    return {
        "count": int(rng.integers(10, 120)),
        "max_radius": int(rng.integers(1, 4)),
        "dark_fraction": float(rng.uniform(0.2, 0.8)),
        "seed": _seed(rng),
    }


def apply_dust(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = img.shape[-2:]
    g = _gen(p["seed"], torch.device("cpu"))
    pts = torch.rand(p["count"], 2, generator=g)
    radius = torch.randint(0, p["max_radius"], (p["count"],), generator=g)
    dark = torch.rand(p["count"], generator=g) < p["dark_fraction"]
    total = torch.zeros(1, 1, h, w, device=img.device)
    for r in range(p["max_radius"]):
        for is_dark, value in ((True, 0.04), (False, 0.96)):
            pick = (radius == r) & (dark == is_dark)
            if pick.any():
                m = _raster(h, w, pts[pick], 2 * r + 1, img.device)
                img = _paint(img, m, value, 1.0)
                total = torch.maximum(total, m)
    return img, total.expand(img.shape[0], 1, h, w)


# -- cracks and creases: branching jagged lines ---------------------------------------------------


def sample_cracks(rng: np.random.Generator, h: int, w: int) -> dict:
    cracks = []
    for _ in range(int(rng.integers(1, 4))):
        x, y = (float(v) for v in rng.uniform(0.1, 0.9, 2))
        heading = float(rng.uniform(0, 2 * math.pi))
        vertices = [[x, y]]
        for _ in range(int(rng.integers(6, 20))):
            heading += float(rng.normal(0, 0.5))
            step = float(rng.uniform(0.01, 0.05))
            x, y = x + step * math.cos(heading), y + step * math.sin(heading)
            vertices.append([x, y])
        cracks.append(
            {
                "vertices": vertices,
                "width": int(rng.integers(1, 3)),
                "value": float(rng.uniform(0.75, 0.95)),
                "alpha": float(rng.uniform(0.6, 0.95)),
            }
        )
    return {"cracks": cracks}


def apply_cracks(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return _strokes(img, p["cracks"], _polyline)


# -- tears and losses at the borders -------------------------------------------------------------


def sample_tears(rng: np.random.Generator, h: int, w: int) -> dict:
    paper = float(rng.uniform(0.8, 0.97))
    return {
        "edge": str(rng.choice(["left", "right", "top", "bottom"])),
        "start": float(rng.uniform(0, 0.7)),
        "length": float(rng.uniform(0.1, 0.3)),
        "depth": float(rng.uniform(0.03, 0.12)),
        "paper": [paper, paper * 0.97, paper * 0.9],
        "seed": _seed(rng),
    }


def apply_tears(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = img.shape[-2:]
    along, across = (h, w) if p["edge"] in ("left", "right") else (w, h)
    t = torch.linspace(0, 1, along)
    inside = ((t - p["start"]) / p["length"]).clamp(0, 1)
    bump = torch.sin(math.pi * inside) * ((t >= p["start"]) & (t <= p["start"] + p["length"]))
    jag = torch.cumsum(torch.randn(along, generator=_gen(p["seed"], torch.device("cpu"))), 0)
    jag = 1 + 0.25 * (jag - jag.mean()) / jag.std().clamp_min(1e-6)
    depth = (p["depth"] * across * bump * jag).clamp_min(0)  # pixels torn away at each position
    pos = torch.arange(across).view(1, across).float()
    region = (pos < depth.view(along, 1)).float()  # [along, across], measured from the edge
    if p["edge"] in ("right", "bottom"):
        region = region.flip(1)
    mask = (region if p["edge"] in ("left", "right") else region.T).view(1, 1, h, w).to(img.device)
    paper = p["paper"][: img.shape[1]] if img.shape[1] > 1 else [sum(p["paper"]) / 3]
    return _paint(img, mask, paper, 1.0), mask.expand(img.shape[0], 1, h, w)
