"""Damage of the print itself, shaped on the real cracked prints (``shared/RESTORATION.md``):
crack networks (branching, ragged, paper-coloured), cracks along folds, creases, lost corners,
emulsion flaking, foxing and water stains' tide lines (which destroy the picture: each returns its
mask), and silvering, fingerprints and tape residue (translucent: the picture is still there, no
mask).

Measured on the real scans: cracks are the paper base showing through, 40-67 levels lighter
than their surroundings and less yellow (blue rises most); some hold dirt and are dark; median
width 0.4-1% of the short side, p90 up to 2%; they branch hundreds of times and gather near the
edges and corners. Widths here are drawn relative to the image's short side for that reason.

Drawing uses OpenCV (anti-aliasing off, so masks are exact); each ``apply_x`` is deterministic
from its parameters (any noise comes from a ``seed`` in them).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from restoration.degrade.tone import _seed

# -- helpers ------------------------------------------------------------------------------------

PAPER_WHITE = np.array([0.97, 0.96, 0.93])  # the lit ridge of a crease or a relief crack


def _noise(seed: int, h: int, w: int, scale: float) -> np.ndarray:
    """Smooth noise in [-1, 1]-ish: white noise blurred at ``scale`` pixels, normalised."""
    rng = np.random.default_rng(seed)
    n = rng.standard_normal((h, w)).astype(np.float32)
    if scale > 0.5:
        n = cv2.GaussianBlur(n, (0, 0), scale)
    return n / max(float(n.std()), 1e-6)


def _as_mask(m: np.ndarray, img: torch.Tensor) -> torch.Tensor:
    return (
        torch.from_numpy(m.astype(np.float32))
        .to(img.device)
        .view(1, 1, *m.shape)
        .expand(img.shape[0], 1, *m.shape)
    )


def _blend(img: torch.Tensor, colour: np.ndarray, alpha: np.ndarray) -> torch.Tensor:
    """``img * (1 - alpha) + colour * alpha``; ``colour`` [3] or [H, W, 3], ``alpha`` [H, W]."""
    c = torch.as_tensor(np.asarray(colour, np.float32), device=img.device)
    c = c.view(1, 3, 1, 1) if c.ndim == 1 else c.permute(2, 0, 1)[None]
    if img.shape[1] == 1:
        c = c.mean(1, keepdim=True)
    a = torch.from_numpy(alpha.astype(np.float32)).to(img.device)[None, None]
    return img * (1 - a) + c.to(img.dtype) * a


def _short(h: int, w: int) -> int:
    return min(h, w)


def _edge_start(rng: np.random.Generator, edge_bias: float) -> tuple[float, float]:
    """A start point, near an edge or corner with probability ``edge_bias`` (where cracks gather)."""
    if rng.random() < edge_bias:
        t, d = float(rng.uniform(0, 1)), float(rng.uniform(0, 0.12))
        return [(d, t), (1 - d, t), (t, d), (t, 1 - d)][int(rng.integers(4))]
    return float(rng.uniform(0.05, 0.95)), float(rng.uniform(0.05, 0.95))


# -- crack networks and craquelure ----------------------------------------------------------------


def _reference(h: int, w: int) -> float:
    """Pixels per unit of damage geometry: the short side, but never under 500, so a training
    crop gets cracks as wide, in pixels, as a 500-1000 px print does (not a 128 px print's)."""
    return max(_short(h, w), 500)


def sample_craquelure(rng: np.random.Generator, h: int, w: int) -> dict:
    """A branching fracture network: trunks that start near the edges, wander inwards and fork,
    each fork thinner; widths and lengths in units of :func:`_reference` (1.5-10 px at 1000 px),
    total length from the real prints' density (0.3-3% of the area, as skeleton pixels)."""
    ref = _reference(h, w)
    total = float(rng.uniform(0.003, 0.03)) * h * w * 500 / ref  # skeleton length, pixels
    step = float(rng.uniform(0.006, 0.018)) * ref
    width = float(np.exp(rng.uniform(np.log(0.0015), np.log(0.01)))) * ref
    segments, drawn, stack = [], 0.0, []
    while drawn < total and len(segments) < 2000:
        if not stack:  # a new trunk, headed roughly inwards
            x, y = _edge_start(rng, 0.6)
            inward = math.atan2(0.5 - y, 0.5 - x) * (1 if (x, y) != (0.5, 0.5) else 0)
            stack.append((x * (w - 1), y * (h - 1), inward + float(rng.normal(0, 0.8)), width, 0))
        x, y, heading, wd, depth = stack.pop()
        for _ in range(int(rng.integers(10, 80))):
            heading += float(rng.normal(0, 0.12)) + (
                float(rng.normal(0, 0.7)) if rng.random() < 0.12 else 0.0
            )
            nx, ny = x + step * math.cos(heading), y + step * math.sin(heading)
            segments.append(_relative(x, y, nx, ny, wd, h, w))
            drawn, x, y = drawn + step, nx, ny
            if not (-0.05 * w < x < 1.05 * w and -0.05 * h < y < 1.05 * h) or drawn >= total:
                break
            if depth < 5 and rng.random() < 0.08:  # a fork: a thinner branch off at an angle
                turn = float(rng.choice([-1, 1]) * rng.uniform(0.5, 1.4))
                stack.append((x, y, heading + turn, max(1.0, wd * float(rng.uniform(0.4, 0.9))), depth + 1))
            wd = max(1.0, wd * float(rng.uniform(0.9, 1.1)))
    return {"segments": segments, **_paper_look(rng, 0.15)}


def _relative(x0: float, y0: float, x1: float, y1: float, wd: float, h: int, w: int) -> list[float]:
    """A segment in pixels as recorded: its ends relative to the picture, its width in pixels."""
    return [
        round(x0 / (w - 1), 5),
        round(y0 / (h - 1), 5),
        round(x1 / (w - 1), 5),
        round(y1 / (h - 1), 5),
        round(wd, 2),
    ]


def _paper_look(rng: np.random.Generator, dark: float) -> dict:
    """How a crack shows the paper: its colour (a dark one, dirt or a backing, ``dark`` of the
    time), opacity, ragged edges and the paper's texture."""
    paper = float(rng.uniform(0.04, 0.2)) if rng.random() < dark else float(rng.uniform(0.82, 0.98))
    return {
        "colour": [paper, paper * float(rng.uniform(0.96, 1.0)), paper * float(rng.uniform(0.9, 1.02))],
        "opacity": float(rng.uniform(0.75, 1.0)),
        "ragged": float(rng.uniform(0.2, 0.8)),
        "texture": float(rng.uniform(0.0, 0.06)),
        "seed": _seed(rng),
    }


def _draw_segments(h: int, w: int, segments: list[list[float]]) -> np.ndarray:
    """Segments [x0, y0, x1, y1] (relative) of ``width`` pixels."""
    canvas = np.zeros((h, w), np.uint8)
    for x0, y0, x1, y1, wd in segments:
        thick = max(1, int(round(wd)))
        p0 = (int(round(x0 * (w - 1))), int(round(y0 * (h - 1))))
        p1 = (int(round(x1 * (w - 1))), int(round(y1 * (h - 1))))
        cv2.line(canvas, p0, p1, 1, thickness=thick, lineType=cv2.LINE_8)
    return canvas


def _ragged(mask: np.ndarray, amount: float, seed: int) -> np.ndarray:
    """Fray a mask's edges outwards: blur it and threshold against noise (never thinner)."""
    if amount <= 0 or not mask.any():
        return mask.astype(bool)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)
    noise = _noise(seed, *mask.shape, 0.7)
    frayed = soft + amount * 0.25 * noise > 0.5
    return frayed | (mask > 0)


def _paper(
    img: torch.Tensor, region: np.ndarray, colour, opacity: float, texture: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Show the paper (or backing) of ``colour`` through ``region``, with the paper's texture."""
    h, w = region.shape
    tex = 1 + texture * _noise(seed + 1, h, w, 0.8)
    col = np.clip(np.asarray(colour, np.float32)[None, None, :] * tex[..., None], 0, 1)
    return _blend(img, col, region * opacity), _as_mask(region, img)


def apply_craquelure(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = img.shape[-2:]
    region = _ragged(_draw_segments(h, w, p["segments"]), p["ragged"], p["seed"]).astype(np.float32)
    return _paper(img, region, p["colour"], p["opacity"], p["texture"], p["seed"])


# -- cracks along a fold: the emulsion broke along a straight line ---------------------------------
# Seen on the real cracked portraits of a boy (old_w_scratch_b: a crack from top to bottom beside his
# ear) and a girl (old_w_scratch_c: a diagonal right of her hair): paper-white, ragged, 2-4 px, and
# straight for the whole print. v15's detector, taught that long straight thin lines are picture
# (lattices, outlines), marked them only in stretches; craquelure's wandering trunks never taught it.


def sample_folds(rng: np.random.Generator, h: int, w: int) -> dict:
    """One or two cracks along a fold line: long and nearly straight (most near the print's axes, as
    prints are folded), paper-coloured and ragged like craquelure, 1-4 px at 500 px and wider in
    places, broken in stretches, with short splinters off them. Drawn as craquelure's segments are."""
    ref = _reference(h, w)
    folds = []
    for _ in range(int(rng.integers(1, 3))):
        segments = []
        square = rng.random() < 0.7
        angle = (
            float(rng.choice([0.0, math.pi / 2])) + float(rng.normal(0, 0.06))
            if square
            else float(rng.uniform(0, math.pi))
        )
        along, across = (math.cos(angle), math.sin(angle)), (-math.sin(angle), math.cos(angle))
        cx, cy = (float(v) for v in rng.uniform(0.1, 0.9, 2))
        span = float(rng.uniform(0.5, 1.6)) * max(h, w)  # pixels; longer than the picture: it crosses it
        step = float(rng.uniform(0.005, 0.012)) * ref
        width = float(np.exp(rng.uniform(np.log(0.002), np.log(0.008)))) * ref
        gaps = float(rng.uniform(0.0, 0.35))  # share of the line broken off
        t, offset, wd, gap = -span / 2, 0.0, width, False
        x, y = cx * (w - 1) + t * along[0], cy * (h - 1) + t * along[1]
        while t < span / 2:
            t += step
            offset = 0.8 * offset + float(rng.normal(0, 0.25 * step))  # jagged, but back on the line
            nx = cx * (w - 1) + t * along[0] + offset * across[0]
            ny = cy * (h - 1) + t * along[1] + offset * across[1]
            if rng.random() < 0.12:  # broken stretches come in runs
                gap = bool(rng.random() < gaps)
            inside = -0.05 * w < nx < 1.05 * w and -0.05 * h < ny < 1.05 * h
            if inside and not gap:
                segments.append(_relative(x, y, nx, ny, wd, h, w))
                if rng.random() < 0.05:  # a splinter off the fold
                    turn = angle + float(rng.choice([-1, 1]) * rng.uniform(0.4, 1.2))
                    sx, sy = nx, ny
                    for _ in range(int(rng.integers(2, 7))):
                        turn += float(rng.normal(0, 0.3))
                        ex, ey = sx + step * math.cos(turn), sy + step * math.sin(turn)
                        segments.append(_relative(sx, sy, ex, ey, max(1.0, wd * 0.5), h, w))
                        sx, sy = ex, ey
            wd = min(max(wd * float(rng.uniform(0.85, 1.15)), 0.5 * width, 1.0), 2 * width)
            x, y = nx, ny
        folds.append(segments)
    # each fold's segments [x0, y0, x1, y1, width], its splinters among them
    return {"folds": folds, **_paper_look(rng, 0.1)}


def apply_folds(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return apply_craquelure(img, {**p, "segments": [s for fold in p["folds"] for s in fold]})


# -- cracks in relief: the emulsion cracked but not lost ---------------------------------------------
# Seen on the real cracked portrait of a couple (old_w_scratch_d): besides the paper-white cracks, a
# network of hairlines across the faces where the picture is still there, each a lip lit by the
# scanner's lamp with a shadow on one side, 10-30 levels either way. No paper shows, so a detector
# taught only paper-coloured cracks leaves them; the inpainter's fill removes them (thin: 1-3 px).


def sample_relief(rng: np.random.Generator, h: int, w: int) -> dict:
    """A crack network (:func:`sample_craquelure`'s geometry, hairline widths) lit from one side."""
    net = sample_craquelure(rng, h, w)
    light = float(rng.uniform(0, 2 * math.pi))
    step = int(rng.integers(1, 3))  # how far the shadow falls from the lip, pixels
    width = float(rng.choice([1.0, 1.0, 2.0]))  # hairlines, one width for the whole network
    return {
        "segments": [[*s[:4], width] for s in net["segments"]],
        "shadow": [round(step * math.cos(light)), round(step * math.sin(light))],
        "brightness": float(rng.uniform(0.12, 0.4)),
        "darkening": float(rng.uniform(0.12, 0.4)),
        "ragged": float(rng.uniform(0.0, 0.15)),
        "seed": net["seed"],
    }


def apply_relief(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = img.shape[-2:]
    lip = _ragged(_draw_segments(h, w, p["segments"]), p["ragged"], p["seed"])
    move = np.float32(
        [[1, 0, p["shadow"][0]], [0, 1, p["shadow"][1]]]
    )  # the lip moved by the shadow's offset
    shadow = (cv2.warpAffine(lip.astype(np.uint8), move, (w, h), flags=cv2.INTER_NEAREST) > 0) & ~lip
    img = _blend(img, np.zeros(3), shadow.astype(np.float32) * p["darkening"])
    img = _blend(img, PAPER_WHITE, lip.astype(np.float32) * p["brightness"])
    return img, _as_mask(lip | shadow, img)


# -- creases and folds: a bright ridge with a shadowed side -----------------------------------------


def sample_creases(rng: np.random.Generator, h: int, w: int) -> dict:
    creases = []
    for _ in range(int(rng.integers(1, 3))):
        angle = float(rng.uniform(0, math.pi))
        cx, cy = (float(v) for v in rng.uniform(0.15, 0.85, 2))
        creases.append(
            {
                "x": cx,
                "y": cy,
                "angle": angle,
                "wobble": float(rng.uniform(0, 0.02)),
                "ridge": float(rng.uniform(0.002, 0.006)),
                "shadow": float(rng.uniform(0.004, 0.015)),
                "brightness": float(rng.uniform(0.25, 0.6)),
                "darkening": float(rng.uniform(0.25, 0.5)),
            }
        )
    return {"creases": creases, "seed": _seed(rng)}


def apply_creases(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = img.shape[-2:]
    s = _short(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ridge_a, shadow_a = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    for i, c in enumerate(p["creases"]):
        nx, ny = -math.sin(c["angle"]), math.cos(c["angle"])  # unit normal of the fold line
        along = (xx / s - c["x"] * w / s) * ny - (yy / s - c["y"] * h / s) * nx
        wob = c["wobble"] * np.sin(along * 9.0 + i)  # folds are not ruler-straight
        d = ((xx / s - c["x"] * w / s) * nx + (yy / s - c["y"] * h / s) * ny) - wob  # signed distance
        ridge = np.abs(d) <= max(c["ridge"], 0.5 / s)
        shadow = (d > c["ridge"]) & (d <= c["ridge"] + max(c["shadow"], 1.0 / s))
        ridge_a = np.maximum(ridge_a, ridge * c["brightness"])
        shadow_a = np.maximum(shadow_a, shadow * c["darkening"])
    shadow_a[ridge_a > 0] = 0  # where folds cross, the ridge is what shows
    img = _blend(_blend(img, np.zeros(3), shadow_a), PAPER_WHITE, ridge_a)
    return img, _as_mask((ridge_a > 0) | (shadow_a > 0), img)


# -- missing corners and edge losses (paper or a dark backing shows) -------------------------------


def sample_losses(rng: np.random.Generator, h: int, w: int) -> dict:
    corners = [int(c) for c in rng.choice(4, size=int(rng.integers(1, 3)), replace=False)]
    dark = rng.random() < 0.5
    backing = [float(v) for v in (rng.uniform(0.03, 0.2, 3) if dark else rng.uniform(0.8, 0.97, 3))]
    return {
        "corners": corners,
        "size": [float(v) for v in rng.uniform(0.08, 0.35, 2)],
        "backing": backing,
        "ragged": float(rng.uniform(0.02, 0.08)),
        "seed": _seed(rng),
    }


def apply_losses(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = img.shape[-2:]
    s = _short(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    noise = _noise(p["seed"], h, w, max(1.0, 0.01 * s))
    region = np.zeros((h, w), bool)
    for corner in p["corners"]:
        dx = xx / s if corner in (0, 2) else (w - 1 - xx) / s
        dy = yy / s if corner in (0, 1) else (h - 1 - yy) / s
        region |= dx / p["size"][0] + dy / p["size"][1] + p["ragged"] * noise < 1.0  # a torn-off triangle
    return _paper(img, region.astype(np.float32), p["backing"], 1.0, 0.03, p["seed"])


# -- emulsion loss and flaking ----------------------------------------------------------------------


def sample_flaking(rng: np.random.Generator, h: int, w: int) -> dict:
    return {
        "coverage": float(rng.uniform(0.01, 0.08)),
        "scale": float(rng.uniform(0.004, 0.02)),
        "where": list(_edge_start(rng, 0.7)),
        "spread": float(rng.uniform(0.15, 0.5)),
        "paper": float(rng.uniform(0.8, 0.97)),
        "seed": _seed(rng),
    }


def apply_flaking(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Islands of lost emulsion, thickest around one place (often an edge), paper beneath."""
    h, w = img.shape[-2:]
    s = _short(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.hypot(xx / s - p["where"][0] * w / s, yy / s - p["where"][1] * h / s)
    field = _noise(p["seed"], h, w, max(0.7, p["scale"] * s)) - dist / p["spread"]
    region = field > np.quantile(field, 1 - p["coverage"])
    paper = [p["paper"], p["paper"] * 0.98, p["paper"] * 0.94]
    return _paper(img, region.astype(np.float32), paper, 1.0, 0.04, p["seed"])


# -- foxing: rust-brown spots ---------------------------------------------------------------------


def sample_foxing(rng: np.random.Generator, h: int, w: int) -> dict:
    n = int(rng.integers(5, 60))
    cx, cy = _edge_start(rng, 0.5)
    spread = float(rng.uniform(0.1, 0.6))
    spots = [
        [
            float(np.clip(cx + rng.normal(0, spread), 0, 1)),
            float(np.clip(cy + rng.normal(0, spread), 0, 1)),
            float(np.exp(rng.uniform(np.log(0.002), np.log(0.015)))),
            float(rng.uniform(0.5, 0.95)),
        ]
        for _ in range(n)
    ]
    return {
        "spots": spots,
        "colour": [
            float(rng.uniform(0.45, 0.65)),
            float(rng.uniform(0.25, 0.4)),
            float(rng.uniform(0.08, 0.2)),
        ],
    }


def apply_foxing(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = img.shape[-2:]
    s = _short(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    alpha = np.zeros((h, w), np.float32)
    for x, y, r, strength in p["spots"]:
        rr = max(r * s, 1.0)
        d2 = ((xx - x * (w - 1)) ** 2 + (yy - y * (h - 1)) ** 2) / rr**2
        alpha = np.maximum(alpha, np.where(d2 <= 1, strength * (1 - 0.5 * d2), 0))  # darker core
    return _blend(img, np.asarray(p["colour"]), alpha), _as_mask(alpha > 0, img)


# -- water stains: a tinted region bounded by a dark tide line ------------------------------------------


def sample_water_stain(rng: np.random.Generator, h: int, w: int) -> dict:
    return {
        "where": list(_edge_start(rng, 0.5)),
        "radius": float(rng.uniform(0.15, 0.5)),
        "wobble": float(rng.uniform(0.1, 0.35)),
        "tint": float(rng.uniform(0.05, 0.2)),
        "line": float(rng.uniform(0.002, 0.006)),
        "line_strength": float(rng.uniform(0.3, 0.6)),
        "seed": _seed(rng),
    }


def apply_water_stain(img: torch.Tensor, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The stain's interior is tinted (the picture shows through: not marked); the tide line at its
    rim, where the dissolved dirt dried, is dark and marked."""
    h, w = img.shape[-2:]
    s = _short(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.hypot(xx / s - p["where"][0] * w / s, yy / s - p["where"][1] * h / s) / p["radius"]
    dist = dist + p["wobble"] * 0.3 * _noise(p["seed"], h, w, max(1.0, 0.05 * s))
    inside = dist < 1
    line = np.abs(dist - 1) * p["radius"] < max(p["line"], 0.8 / s)
    brown = np.array([0.55, 0.42, 0.25], np.float32)
    img = _blend(img, brown, inside * p["tint"])
    img = _blend(img, brown * 0.5, line * p["line_strength"])
    return img, _as_mask(line, img)


# -- translucent: silvering, fingerprints, tape residue (no mask: the picture is still there) ----------


def sample_silvering(rng: np.random.Generator, h: int, w: int) -> dict:
    return {
        "strength": float(rng.uniform(0.15, 0.45)),
        "reach": float(rng.uniform(0.1, 0.35)),
        "tint": [float(v) for v in rng.uniform(0.6, 0.8, 3)],
        "seed": _seed(rng),
    }


def apply_silvering(img: torch.Tensor, p: dict) -> torch.Tensor:
    """A bluish metallic sheen on the dark parts of a print, strongest towards its edges."""
    h, w = img.shape[-2:]
    s = _short(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    edge = np.minimum(np.minimum(xx, w - 1 - xx), np.minimum(yy, h - 1 - yy)) / s
    reach = np.clip(1 - edge / p["reach"], 0, 1) * (1 + 0.3 * _noise(p["seed"], h, w, max(1.0, 0.03 * s)))
    dark = (1 - img.mean(1, keepdim=True)).clamp(0, 1) ** 2
    a = torch.from_numpy(np.clip(reach, 0, 1) * p["strength"]).to(img)[None, None] * dark
    tint = torch.tensor(p["tint"], dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    tint = tint.mean(1, keepdim=True) if img.shape[1] == 1 else tint
    return img * (1 - a) + tint * a


def sample_fingerprints(rng: np.random.Generator, h: int, w: int) -> dict:
    return {
        "prints": [
            [
                *_edge_start(rng, 0.7),
                float(rng.uniform(0.04, 0.09)),
                float(rng.uniform(0, math.pi)),
                float(rng.uniform(0.05, 0.15)),
            ]
            for _ in range(int(rng.integers(1, 4)))
        ],
        "pitch": float(rng.uniform(0.004, 0.008)),
    }


def apply_fingerprints(img: torch.Tensor, p: dict) -> torch.Tensor:
    """Greasy ridge patterns: elliptical whorls that darken and flatten the picture a little."""
    h, w = img.shape[-2:]
    s = _short(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    alpha = np.zeros((h, w), np.float32)
    for x, y, r, angle, strength in p["prints"]:
        dx, dy = xx / s - x * w / s, yy / s - y * h / s
        u = dx * math.cos(angle) + dy * math.sin(angle)
        v = -dx * math.sin(angle) + dy * math.cos(angle)
        rho = np.hypot(u / 0.7, v)
        ridges = 0.5 + 0.5 * np.cos(2 * math.pi * rho / p["pitch"] + 3 * np.arctan2(v, u) / (rho / r + 1))
        alpha = np.maximum(alpha, np.where(rho < r, strength * ridges * (1 - (rho / r) ** 4), 0))
    return _blend(img, np.array([0.45, 0.42, 0.38]), alpha)


def sample_tape(rng: np.random.Generator, h: int, w: int) -> dict:
    return {
        "x": float(rng.uniform(0, 0.9)),
        "y": float(rng.uniform(0, 0.9)),
        "length": float(rng.uniform(0.15, 0.5)),
        "breadth": float(rng.uniform(0.05, 0.12)),
        "vertical": bool(rng.random() < 0.5),
        "amber": float(rng.uniform(0.15, 0.45)),
    }


def apply_tape(img: torch.Tensor, p: dict) -> torch.Tensor:
    """Yellowed adhesive left by old tape: an amber film over a strip, a little darker at its edges."""
    h, w = img.shape[-2:]
    s = _short(h, w)
    lx, ly = (p["breadth"], p["length"]) if p["vertical"] else (p["length"], p["breadth"])
    x0, y0 = int(p["x"] * w), int(p["y"] * h)
    x1, y1 = min(w, x0 + max(2, int(lx * s))), min(h, y0 + max(2, int(ly * s)))
    alpha = np.zeros((h, w), np.float32)
    alpha[y0:y1, x0:x1] = p["amber"]
    rim = np.zeros_like(alpha)
    rim[y0:y1, x0:x1] = 1
    rim = rim - cv2.erode(rim, np.ones((3, 3), np.uint8))
    alpha = np.maximum(alpha, rim * min(1.0, p["amber"] * 1.6))
    return _blend(img, np.array([0.8, 0.6, 0.25]), alpha)


# -- picture structures a detector must leave: lattices and lettering ---------------------------------
# Not damage: part of the scene (drawn before tone and scan effects, no mask). Thin, bright,
# straight lines in regular families (towers, railings, window bars, rigging) and rows of small
# strokes (lettering on signs and name tags) are what a crack detector erases on clean photographs.


def _region(rng: np.random.Generator) -> list[list[float]]:
    """A random convex quadrilateral (relative corners) covering a good part of the image."""
    cx, cy = float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))
    rx, ry, turn = float(rng.uniform(0.2, 0.6)), float(rng.uniform(0.2, 0.6)), float(rng.uniform(0, math.pi))
    corners = []
    for k in range(4):
        a = turn + k * math.pi / 2 + float(rng.uniform(-0.3, 0.3))
        corners.append([round(cx + rx * math.cos(a), 4), round(cy + ry * math.sin(a), 4)])
    return corners


def _stroke_colour(rng: np.random.Generator) -> list[float]:
    bright = rng.random() < 0.7
    v = float(rng.uniform(0.78, 1.0)) if bright else float(rng.uniform(0.0, 0.25))
    return [v, v * float(rng.uniform(0.95, 1.0)), v * float(rng.uniform(0.9, 1.02))]


def sample_lattice(rng: np.random.Generator, h: int, w: int) -> dict:
    families = []
    base = float(rng.choice([0.0, math.pi / 2])) + float(rng.normal(0, 0.25))
    for k in range(int(rng.integers(1, 4))):
        angle = (
            base
            + (k * math.pi / 2 if k < 2 else float(rng.choice([-1, 1])) * math.pi / 4)
            + float(rng.normal(0, 0.05))
        )
        families.append(
            {
                "angle": round(angle, 4),
                "spacing": float(rng.uniform(5, 32)),
                "offset": float(rng.uniform(0, 1)),
                "width": int(rng.integers(1, 4)),
            }
        )
    return {
        "families": families,
        "region": _region(rng),
        "colour": _stroke_colour(rng),
        "opacity": float(rng.uniform(0.6, 1.0)),
        "soften": float(rng.uniform(0.0, 0.8)),
    }


def apply_lattice(img: torch.Tensor, p: dict) -> torch.Tensor:
    h, w = img.shape[-2:]
    lines = np.zeros((h, w), np.uint8)
    diag = math.hypot(h, w)
    for f in p["families"]:
        ux, uy = math.cos(f["angle"]), math.sin(f["angle"])  # along the lines
        nx, ny = -uy, ux  # across them
        t = -diag + f["offset"] * f["spacing"]
        while t < diag:
            cx, cy = w / 2 + nx * t, h / 2 + ny * t
            p0 = (int(round(cx - ux * diag)), int(round(cy - uy * diag)))
            p1 = (int(round(cx + ux * diag)), int(round(cy + uy * diag)))
            cv2.line(lines, p0, p1, 255, thickness=f["width"], lineType=cv2.LINE_AA)
            t += f["spacing"]
    region = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(region, np.array([[x * (w - 1), y * (h - 1)] for x, y in p["region"]], np.int32), 1)
    alpha = lines.astype(np.float32) / 255 * region
    if p["soften"] > 0.3:
        alpha = cv2.GaussianBlur(alpha, (0, 0), p["soften"])
    return _blend(img, np.asarray(p["colour"]), alpha * p["opacity"])


def sample_lettering(rng: np.random.Generator, h: int, w: int) -> dict:
    rows = []
    for _ in range(int(rng.integers(1, 5))):
        size = float(rng.uniform(5, 16))
        glyphs = []
        for _ in range(int(rng.integers(3, 16))):
            glyphs.append(
                [[round(float(v), 3) for v in rng.uniform(0, 1, 4)] for _ in range(int(rng.integers(2, 5)))]
            )
        rows.append(
            {
                "x": float(rng.uniform(0, 0.8)),
                "y": float(rng.uniform(0.05, 0.95)),
                "size": size,
                "angle": float(rng.normal(0, 0.1)),
                "glyphs": glyphs,
            }
        )
    return {
        "rows": rows,
        "colour": _stroke_colour(rng),
        "width": int(rng.integers(1, 3)),
        "opacity": float(rng.uniform(0.7, 1.0)),
    }


def apply_lettering(img: torch.Tensor, p: dict) -> torch.Tensor:
    h, w = img.shape[-2:]
    canvas = np.zeros((h, w), np.uint8)
    for row in p["rows"]:
        s, a = row["size"], row["angle"]
        ux, uy, vx, vy = math.cos(a), math.sin(a), -math.sin(a), math.cos(a)
        for i, strokes in enumerate(row["glyphs"]):
            ox, oy = row["x"] * w + ux * i * s * 0.8, row["y"] * h + uy * i * s * 0.8
            for x0, y0, x1, y1 in strokes:  # within a glyph's box, 0.6 s wide and s high
                q0 = (
                    int(round(ox + (ux * x0 * 0.6 + vx * y0) * s)),
                    int(round(oy + (uy * x0 * 0.6 + vy * y0) * s)),
                )
                q1 = (
                    int(round(ox + (ux * x1 * 0.6 + vx * y1) * s)),
                    int(round(oy + (uy * x1 * 0.6 + vy * y1) * s)),
                )
                cv2.line(canvas, q0, q1, 255, thickness=p["width"], lineType=cv2.LINE_AA)
    return _blend(img, np.asarray(p["colour"]), canvas.astype(np.float32) / 255 * p["opacity"])


# Outlines of things (spectacle and wheel rims, cup lips, clock hands, poles, wires): single thin
# curves and lines, dark or bright, often metal with a lit edge beside a dark one. Photographs are
# full of them, and a crack detector fills them (the rims of a boy's glasses on a real print).


def _fixed(x: float, y: float) -> tuple[int, int]:
    """A point in OpenCV's fixed point (``shift`` 4: sixteenths of a pixel)."""
    return int(round(x * 16)), int(round(y * 16))


def sample_outlines(rng: np.random.Generator, h: int, w: int) -> dict:
    shapes = []
    for _ in range(int(rng.integers(1, 5))):
        kind = str(rng.choice(["ellipse", "box", "line"], p=[0.4, 0.3, 0.3]))
        start = float(rng.uniform(0, 360))
        shapes.append(
            {
                "kind": kind,
                "centre": [float(v) for v in rng.uniform(0.1, 0.9, 2)],
                "radii": [float(v) for v in rng.uniform(0.04, 0.35, 2)],  # of the short side
                "angle": float(rng.uniform(0, 180)),
                # ellipses: an arc of it (a rim half hidden), or all of it
                "arc": [start, start + float(rng.uniform(90, 360))] if rng.random() < 0.5 else [0.0, 360.0],
                "width": int(rng.integers(1, 3)),
            }
        )
    return {
        "shapes": shapes,
        "colour": _stroke_colour(rng) if rng.random() < 0.5 else [float(v) for v in rng.uniform(0.0, 0.3, 3)],
        "lit": float(rng.uniform(0.4, 1.0)) if rng.random() < 0.5 else 0.0,  # a bright edge beside it
        "lit_side": [float(v) for v in rng.normal(0, 1, 2)],
        "opacity": float(rng.uniform(0.6, 1.0)),
        "soften": float(rng.uniform(0.0, 1.0)),
    }


def _draw_outlines(h: int, w: int, shapes: list[dict], shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    canvas = np.zeros((h, w), np.uint8)
    s, f = min(h, w), 16  # cv2 draws with 4 fractional bits
    for sh in shapes:
        cx, cy = sh["centre"][0] * (w - 1) + shift[0], sh["centre"][1] * (h - 1) + shift[1]
        rx, ry, t = sh["radii"][0] * s, sh["radii"][1] * s, sh["width"]
        if sh["kind"] == "ellipse":
            cv2.ellipse(
                canvas,
                _fixed(cx, cy),
                _fixed(rx, ry),
                sh["angle"],
                sh["arc"][0],
                sh["arc"][1],
                255,
                t,
                cv2.LINE_AA,
                4,
            )
        elif sh["kind"] == "box":
            corners = cv2.boxPoints(((cx, cy), (2 * rx, 2 * ry), sh["angle"]))
            cv2.polylines(canvas, [np.round(corners * f).astype(np.int32)], True, 255, t, cv2.LINE_AA, 4)
        else:  # a hand, a pole, a wire: one segment through the centre
            a = math.radians(sh["angle"])
            dx, dy = math.cos(a) * rx, math.sin(a) * rx
            p0, p1 = _fixed(cx - dx, cy - dy), _fixed(cx + dx, cy + dy)
            cv2.line(canvas, p0, p1, 255, t, cv2.LINE_AA, 4)
    return canvas.astype(np.float32) / 255


def apply_outlines(img: torch.Tensor, p: dict) -> torch.Tensor:
    h, w = img.shape[-2:]
    line = _draw_outlines(h, w, p["shapes"])
    out = img
    if p["lit"] > 0:  # the lit edge: the same outline moved a little to one side, under the line
        side = np.asarray(p["lit_side"], np.float64)
        dx, dy = side / max(float(np.hypot(*side)), 1e-6) * 1.5
        lit = np.clip(_draw_outlines(h, w, p["shapes"], (dx, dy)) - line, 0, 1)
        if p["soften"] > 0.3:
            lit = cv2.GaussianBlur(lit, (0, 0), p["soften"])
        out = _blend(out, np.array([0.97, 0.96, 0.92]), lit * p["lit"] * p["opacity"])
    if p["soften"] > 0.3:
        line = cv2.GaussianBlur(line, (0, 0), p["soften"])
    return _blend(out, np.asarray(p["colour"]), line * p["opacity"])


# Glints: the specular highlights of shiny things (a spoon's bowl, a cup's glazed lip, a button,
# a wet eye's catch-light) on the dark or shaded body that carries them. Bright, thin and curved
# like a crack, but soft-edged, tapering to nothing at both ends, and bound to a shaded shape: the
# coffee crop's spoon and the real portraits' eye highlights are what a crack detector marked.


def sample_glints(rng: np.random.Generator, h: int, w: int) -> dict:
    s, glints = _short(h, w), []
    for _ in range(int(rng.integers(1, 6))):
        kind = str(rng.choice(["crescent", "spot", "streak"], p=[0.5, 0.25, 0.25]))
        body = float(rng.uniform(0.03, 0.2)) * s if kind != "spot" else float(rng.uniform(2.5, 9))
        start = float(rng.uniform(0, 360))
        glints.append(
            {
                "kind": kind,
                "centre": [float(v) for v in rng.uniform(0.05, 0.95, 2)],
                "radii": [round(body, 3), round(body * float(rng.uniform(0.4, 1.0)), 3)],  # pixels
                "angle": float(rng.uniform(0, 180)),
                "arc": [start, start + float(rng.uniform(25, 160))],
                "width": float(rng.uniform(1.0, 4.5)) if kind != "spot" else float(rng.uniform(0.8, 3.0)),
                # the shiny thing's own shading under the glint: a darker body, or none
                "shade": float(rng.uniform(0.3, 0.8)) if rng.random() < 0.6 else 0.0,
                "tint": [float(v) for v in rng.uniform(0.88, 1.0, 3)],
            }
        )
    return {"glints": glints, "soften": float(rng.uniform(0.5, 1.6)), "opacity": float(rng.uniform(0.7, 1.0))}


def _glint_light(g: dict, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A glint's light and its body's shade, each [H, W] in [0, 1], before softening."""
    light, shade = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    cx, cy = g["centre"][0] * (w - 1), g["centre"][1] * (h - 1)
    rx, ry = g["radii"]
    cv2.ellipse(shade, _fixed(cx, cy), _fixed(rx, ry), g["angle"], 0, 360, 1.0, -1, cv2.LINE_AA, 4)
    if g["kind"] == "spot":  # a catch-light: a small round light off the centre of a dark round
        a = math.radians(g["arc"][0])
        at = (cx + 0.35 * rx * math.cos(a), cy + 0.35 * ry * math.sin(a))
        cv2.circle(light, _fixed(*at), _fixed(g["width"], 0)[0], 1.0, -1, cv2.LINE_AA, 4)
        return light, shade
    # along an arc of the body's rim (crescent) or a chord of it (streak), as wide as the glint at
    # its middle and tapering to nothing at both ends
    t = np.linspace(0.0, 1.0, max(8, int((rx + ry) * 2)))
    turn = math.radians(g["angle"])
    if g["kind"] == "crescent":
        a = np.radians(g["arc"][0] + t * (g["arc"][1] - g["arc"][0]))
        ex, ey = 0.8 * rx * np.cos(a), 0.8 * ry * np.sin(a)
    else:
        ex, ey = (t - 0.5) * 1.6 * rx, np.full_like(t, 0.3 * ry)
    xs = cx + ex * math.cos(turn) - ey * math.sin(turn)
    ys = cy + ex * math.sin(turn) + ey * math.cos(turn)
    for x, y, k in zip(xs, ys, np.sin(np.pi * t) ** 0.8, strict=True):
        r = g["width"] / 2 * k
        if r >= 0.2:
            cv2.circle(light, _fixed(x, y), _fixed(r, 0)[0], 1.0, -1, cv2.LINE_AA, 4)
    return light, shade


def apply_glints(img: torch.Tensor, p: dict) -> torch.Tensor:
    h, w = img.shape[-2:]
    out = img
    for g in p["glints"]:
        light, shade = _glint_light(g, h, w)
        if g["shade"] > 0:  # the body: the picture darkened, most at its centre
            shade = cv2.GaussianBlur(shade, (0, 0), max(1.0, 0.3 * min(g["radii"])))
            out = _blend(out, np.zeros(3), g["shade"] * shade)
        light = cv2.GaussianBlur(light, (0, 0), p["soften"])
        out = _blend(out, np.asarray(g["tint"]), np.clip(light * 1.3, 0, 1) * p["opacity"])
    return out


# -- blossoms: flowers in a garden, small white petals round a heart --------------------------------
# Seen on the real autochrome of a girl among daisies (old_b, undamaged): v15's detector marked the
# white petals on the dark foliage as cracks and the fill smeared the flowers. Part of the scene (no
# mask), drawn before any damage, like lattices and glints.


def sample_blossoms(rng: np.random.Generator, h: int, w: int) -> dict:
    """Clusters of small flowers (daisies, blossom): 6-24 thin pale petals round a yellow or dark
    heart, 3-14 px long, some seen at a slant (the ring squashed), some petals missing; often on a
    darker, mottled ground (foliage). Sizes in pixels, as on a scanned print."""
    s, clusters = _short(h, w), []
    for _ in range(int(rng.integers(1, 4))):
        centre = rng.uniform(0.1, 0.9, 2)
        spread = float(rng.uniform(0.08, 0.35))
        scale = float(rng.uniform(3, 14))  # petal length of this cluster's flowers
        flowers = []
        for _ in range(int(rng.integers(3, 26))):
            at = np.clip(centre + rng.normal(0, spread, 2) * s / np.array([w, h]), 0.0, 1.0)
            n = int(rng.integers(6, 25))
            start = float(rng.uniform(0, 360 / n))
            kept = rng.random(n) > float(rng.uniform(0, 0.35))
            flowers.append(
                {
                    "centre": [round(float(v), 4) for v in at],
                    "length": round(scale * float(rng.uniform(0.7, 1.3)), 2),
                    "width": round(float(rng.uniform(0.8, 2.5)), 2),
                    "petals": [round(start + i * 360 / n, 2) for i in range(n) if kept[i]],
                    "squash": float(rng.uniform(0.35, 1.0)),  # seen at a slant
                    "turn": float(rng.uniform(0, 180)),
                    "heart": float(rng.uniform(0.15, 0.35)),  # heart radius, of the petal length
                }
            )
        yellow = rng.random() < 0.6
        clusters.append(
            {
                "flowers": flowers,
                "petal": [float(v) for v in rng.uniform(0.85, 1.0, 3)],
                "heart": [
                    float(v)
                    for v in (
                        rng.uniform([0.7, 0.5, 0.05], [0.95, 0.75, 0.3])
                        if yellow
                        else rng.uniform(0.1, 0.35, 3)
                    )
                ],
                # the ground under the cluster (leaves): darkened by this much, mottled; 0: none
                "ground": float(rng.uniform(0.2, 0.5)) if rng.random() < 0.5 else 0.0,
                "spread": spread,
                "centre": [float(v) for v in centre],
            }
        )
    return {
        "clusters": clusters,
        "soften": float(rng.uniform(0.3, 0.9)),
        "opacity": float(rng.uniform(0.8, 1.0)),
        "seed": _seed(rng),
    }


def _blossom_layers(c: dict, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """One cluster's petals and hearts, each [H, W] in [0, 1], before softening."""
    petals, hearts = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    for f in c["flowers"]:
        cx, cy = f["centre"][0] * (w - 1), f["centre"][1] * (h - 1)
        turn, sq, r = math.radians(f["turn"]), f["squash"], f["length"]
        for a in f["petals"]:
            t = math.radians(a)
            # the petal's middle and direction on the slanted ring: squash, then turn
            dx, dy = math.cos(t), sq * math.sin(t)
            dx, dy = dx * math.cos(turn) - dy * math.sin(turn), dx * math.sin(turn) + dy * math.cos(turn)
            reach = math.hypot(dx, dy)
            mid = (cx + dx * r * 0.65, cy + dy * r * 0.65)
            axes, angle = (
                (max(0.5, reach * r * 0.45), max(0.4, f["width"] / 2)),
                math.degrees(math.atan2(dy, dx)),
            )
            cv2.ellipse(petals, _fixed(*mid), _fixed(*axes), angle, 0, 360, 1.0, -1, cv2.LINE_AA, 4)
        hr = max(0.6, f["heart"] * r)
        cv2.ellipse(hearts, _fixed(cx, cy), _fixed(hr, hr * sq), f["turn"], 0, 360, 1.0, -1, cv2.LINE_AA, 4)
    return petals, hearts


def apply_blossoms(img: torch.Tensor, p: dict) -> torch.Tensor:
    h, w = img.shape[-2:]
    s, out = _short(h, w), img
    for i, c in enumerate(p["clusters"]):
        if c["ground"] > 0:  # leaves: the picture darkened round the cluster, mottled
            cx, cy = c["centre"][0] * (w - 1), c["centre"][1] * (h - 1)
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (1.5 * c["spread"] * s) ** 2
            leaves = np.exp(-d2) * np.clip(0.7 + 0.3 * _noise(p["seed"] + i, h, w, 4.0), 0, 1)
            out = _blend(out, np.zeros(3), c["ground"] * leaves)
        petals, hearts = _blossom_layers(c, h, w)
        hearts = cv2.GaussianBlur(hearts, (0, 0), p["soften"]) * p["opacity"]
        petals = cv2.GaussianBlur(petals, (0, 0), p["soften"]) * p["opacity"]
        out = _blend(
            _blend(out, np.asarray(c["petal"]), np.clip(petals, 0, 1)),
            np.asarray(c["heart"]),
            np.clip(hearts, 0, 1),
        )
    return out


# -- emblems: stars, dots and badges printed on a flat ground -----------------------------------------
# Seen on the held-out portrait in front of a flag (grace_hopper): a white star of the flag where the
# crop's edge cuts it was taken for a lost flake of emulsion and filled blue. Flags, uniforms' badges,
# polka dots and printed patterns put pale, crisp, regular shapes on a plain ground; flakes are ragged.
# Part of the scene (no mask), drawn before any damage.

EMBLEM_SHAPES = ("star", "disc", "diamond", "square")


def sample_emblems(rng: np.random.Generator, h: int, w: int) -> dict:
    """One to three groups of one shape each (a five-pointed star, a disc, a diamond, a square),
    5-40 px across (more small than large), pale or a flat colour, in rows or scattered, on a flat
    ground (a flag's field, a badge's cloth) or on the picture itself; a group's region and its
    shapes may run off the picture's edge, as a crop cuts them."""
    s, groups = _short(h, w), []
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = rng.uniform(-0.2, 0.7, 2)
        x1, y1 = x0 + rng.uniform(0.2, 0.9), y0 + rng.uniform(0.2, 0.9)
        size = float(np.exp(rng.uniform(np.log(5), np.log(40)))) * s / 256
        gap = size * float(rng.uniform(1.4, 3.0))  # centre to centre
        cols, rows = max(1, int((x1 - x0) * w / gap)), max(1, int((y1 - y0) * h / gap))
        if rng.random() < 0.6:  # in rows, as on a flag (every other row shifted half a step, or not)
            gx, gy = np.meshgrid(
                x0 + (np.arange(cols) + 0.5) * gap / w, y0 + (np.arange(rows) + 0.5) * gap / h
            )
            gx = gx + (np.arange(rows)[:, None] % 2) * gap / w / 2 * (rng.random() < 0.5)
            points = np.stack([gx, gy], -1).reshape(-1, 2)
        else:
            n = max(1, cols * rows // 3)
            points = np.stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)], -1)
        points = points[rng.permutation(len(points))[:60]]
        pale = rng.random() < 0.75
        groups.append(
            {
                "shape": EMBLEM_SHAPES[int(rng.integers(len(EMBLEM_SHAPES)))],
                "size": round(size, 2),
                "turn": float(rng.uniform(-20, 20)) if rng.random() < 0.5 else 0.0,
                "points": [[round(float(x), 4), round(float(y), 4)] for x, y in points],
                "colour": [
                    float(v) for v in (rng.uniform(0.85, 1.0, 3) if pale else rng.uniform(0.1, 0.9, 3))
                ],
                # the flat ground under the group (a flag's field), or none: on the picture itself
                "ground": [float(v) for v in rng.uniform(0.05, 0.6, 3)] if rng.random() < 0.7 else None,
                "region": [round(float(v), 4) for v in (x0, y0, x1, y1)],
            }
        )
    return {"groups": groups, "soften": float(rng.uniform(0.3, 1.0))}


def _emblem(shape: str, cx: float, cy: float, r: float, turn: float) -> np.ndarray:
    """The outline of one emblem of radius ``r`` (centre to tip), as OpenCV's fixed-point points."""
    if shape == "star":
        a = np.radians(turn - 90 + np.arange(10) * 36)
        rad = np.where(np.arange(10) % 2 == 0, r, r * 0.382)
    elif shape == "disc":
        a, rad = np.radians(np.arange(0, 360, 10)), np.full(36, r)
    elif shape == "diamond":
        a, rad = np.radians(turn + np.arange(4) * 90), np.full(4, r)
    else:
        a, rad = np.radians(turn + 45 + np.arange(4) * 90), np.full(4, r)
    return np.array(
        [_fixed(cx + d * np.cos(t), cy + d * np.sin(t)) for t, d in zip(a, rad, strict=True)], np.int32
    )


def apply_emblems(img: torch.Tensor, p: dict) -> torch.Tensor:
    h, w = img.shape[-2:]
    out = img
    for g in p["groups"]:
        if g["ground"] is not None:
            x0, y0, x1, y1 = g["region"]
            field = np.zeros((h, w), np.float32)
            cv2.rectangle(field, _fixed(x0 * w, y0 * h), _fixed(x1 * w, y1 * h), 1.0, -1, cv2.LINE_AA, 4)
            out = _blend(out, np.asarray(g["ground"]), field)
        shapes = np.zeros((h, w), np.float32)
        polys = [_emblem(g["shape"], x * w, y * h, g["size"] / 2, g["turn"]) for x, y in g["points"]]
        cv2.fillPoly(shapes, polys, 1.0, cv2.LINE_AA, 4)
        shapes = cv2.GaussianBlur(shapes, (0, 0), p["soften"])
        out = _blend(out, np.asarray(g["colour"]), np.clip(shapes, 0, 1))
    return out
