"""Unstructured effects of age: blur, resampling, noise, grain, fading, casts, toning, screens.

Images are float tensors [B, C, H, W] in [0, 1]; parameters are JSON-safe dicts; any randomness
an effect needs at apply time comes from a ``seed`` in its parameters.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

LUMA = (0.299, 0.587, 0.114)


def _gen(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def luminance(img: torch.Tensor) -> torch.Tensor:
    if img.shape[1] == 1:
        return img
    w = torch.tensor(LUMA, device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
    return (img * w).sum(1, keepdim=True)


def _filter(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    c, k = img.shape[1], kernel.shape[-1]
    weight = kernel.to(img).expand(c, 1, k, k)
    return F.conv2d(F.pad(img, [k // 2] * 4, mode="reflect"), weight, groups=c)


# -- blur ------------------------------------------------------------------------------------


def sample_gaussian_blur(rng: np.random.Generator, h: int, w: int) -> dict:
    return {"sigma": float(rng.uniform(0.4, 2.0))}


def apply_gaussian_blur(img: torch.Tensor, p: dict) -> torch.Tensor:
    radius = max(1, math.ceil(3 * p["sigma"]))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * p["sigma"] ** 2))
    g = g / g.sum()
    return _filter(img, (g[:, None] * g[None, :])[None, None])


def sample_motion_blur(rng: np.random.Generator, h: int, w: int) -> dict:
    return {"length": int(rng.integers(3, 10)), "angle": float(rng.uniform(0, 180))}


def apply_motion_blur(img: torch.Tensor, p: dict) -> torch.Tensor:
    k = p["length"] | 1
    yy, xx = torch.meshgrid(torch.arange(k) - k // 2, torch.arange(k) - k // 2, indexing="ij")
    a = math.radians(p["angle"])
    dist = (xx * math.sin(a) - yy * math.cos(a)).abs()  # distance from the line through the centre
    kernel = (dist <= 0.5).float() * ((xx**2 + yy**2) <= (k // 2) ** 2 + 0.5).float()
    return _filter(img, (kernel / kernel.sum())[None, None])


def sample_resample(rng: np.random.Generator, h: int, w: int) -> dict:
    return {"factor": float(rng.uniform(1.5, 4.0)), "mode": str(rng.choice(["bilinear", "bicubic", "area"]))}


def apply_resample(img: torch.Tensor, p: dict) -> torch.Tensor:
    h, w = img.shape[-2:]
    small = (max(1, round(h / p["factor"])), max(1, round(w / p["factor"])))
    kw = {} if p["mode"] == "area" else {"align_corners": False}
    down = F.interpolate(img, size=small, mode=p["mode"], **kw)
    return F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


# -- noise and grain ---------------------------------------------------------------------------


def sample_gaussian_noise(rng: np.random.Generator, h: int, w: int) -> dict:
    return {"sigma": float(rng.uniform(0.01, 0.08)), "gray": bool(rng.random() < 0.5), "seed": _seed(rng)}


def apply_gaussian_noise(img: torch.Tensor, p: dict) -> torch.Tensor:
    shape = (img.shape[0], 1 if p["gray"] else img.shape[1], *img.shape[2:])
    noise = torch.randn(shape, generator=_gen(p["seed"], img.device), device=img.device) * p["sigma"]
    return (img + noise).clamp(0, 1)


def sample_poisson_noise(rng: np.random.Generator, h: int, w: int) -> dict:
    return {"photons": float(10 ** rng.uniform(1.5, 3.0)), "seed": _seed(rng)}


def apply_poisson_noise(img: torch.Tensor, p: dict) -> torch.Tensor:
    counts = torch.poisson(img.clamp(0, 1) * p["photons"], generator=_gen(p["seed"], img.device))
    return (counts / p["photons"]).clamp(0, 1)


def sample_speckle_noise(rng: np.random.Generator, h: int, w: int) -> dict:
    return {"sigma": float(rng.uniform(0.03, 0.15)), "seed": _seed(rng)}


def apply_speckle_noise(img: torch.Tensor, p: dict) -> torch.Tensor:
    noise = torch.randn(img.shape, generator=_gen(p["seed"], img.device), device=img.device)
    return (img * (1 + p["sigma"] * noise)).clamp(0, 1)


def sample_film_grain(rng: np.random.Generator, h: int, w: int) -> dict:
    return {
        "strength": float(rng.uniform(0.015, 0.06)),
        "size": float(rng.uniform(0.6, 1.5)),
        "seed": _seed(rng),
    }


def apply_film_grain(img: torch.Tensor, p: dict) -> torch.Tensor:
    """Clumped silver grain: blurred noise, strongest in the mid-tones, the same in every channel."""
    shape = (img.shape[0], 1, *img.shape[2:])
    noise = torch.randn(shape, generator=_gen(p["seed"], img.device), device=img.device)
    grain = apply_gaussian_blur(noise, {"sigma": p["size"]})
    grain = grain / grain.std().clamp_min(1e-6)
    lum = luminance(img)
    return (img + p["strength"] * grain * 4 * lum * (1 - lum)).clamp(0, 1)


def sample_jpeg(rng: np.random.Generator, h: int, w: int) -> dict:
    return {"quality": int(rng.integers(25, 90))}


def apply_jpeg(img: torch.Tensor, p: dict) -> torch.Tensor:
    out = []
    for one in img:
        arr = (one.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).squeeze(-1).cpu().numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=p["quality"])
        back = np.asarray(Image.open(buf), dtype=np.float32) / 255.0
        back = back[..., None] if back.ndim == 2 else back
        out.append(torch.from_numpy(back).permute(2, 0, 1))
    return torch.stack(out).to(img)


# -- tone and colour -------------------------------------------------------------------------


def sample_fading(rng: np.random.Generator, h: int, w: int) -> dict:
    return {"lift": float(rng.uniform(0.03, 0.25)), "contrast": float(rng.uniform(0.5, 0.9))}


def apply_fading(img: torch.Tensor, p: dict) -> torch.Tensor:
    """Lifted blacks and lowered contrast (around mid-grey, so tiles see the same mapping)."""
    faded = 0.5 + (img - 0.5) * p["contrast"]
    return (p["lift"] + faded * (1 - p["lift"])).clamp(0, 1)


def sample_yellowing(rng: np.random.Generator, h: int, w: int) -> dict:
    gains = [1.0, float(rng.uniform(0.85, 1.0)), float(rng.uniform(0.55, 0.9))]
    if rng.random() < 0.3:  # a cast of another colour instead of yellow
        gains = [float(g) for g in rng.permutation(gains)]
    return {"gains": gains, "tint": float(rng.uniform(0.0, 0.08))}


def apply_yellowing(img: torch.Tensor, p: dict) -> torch.Tensor:
    gains = torch.tensor(p["gains"], device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
    tint = p["tint"] * torch.tensor([1.0, 0.85, 0.3], device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
    return (img * gains + tint).clamp(0, 1)


SEPIA = ((0.393, 0.769, 0.189), (0.349, 0.686, 0.168), (0.272, 0.534, 0.131))


def sample_sepia(rng: np.random.Generator, h: int, w: int) -> dict:
    return {"strength": float(rng.uniform(0.4, 1.0))}


def apply_sepia(img: torch.Tensor, p: dict) -> torch.Tensor:
    m = torch.tensor(SEPIA, device=img.device, dtype=img.dtype)
    toned = torch.einsum("oc,bchw->bohw", m, img).clamp(0, 1)
    return img + p["strength"] * (toned - img)


def sample_halftone(rng: np.random.Generator, h: int, w: int) -> dict:
    return {
        "period": float(rng.uniform(3.0, 7.0)),
        "angle": float(rng.uniform(0, 90)),
        "mix": float(rng.uniform(0.2, 0.6)),
    }


def apply_halftone(img: torch.Tensor, p: dict) -> torch.Tensor:
    """A printed screen: luminance thresholded against a rotated dot pattern, mixed in."""
    h, w = img.shape[-2:]
    yy, xx = torch.meshgrid(
        torch.arange(h, device=img.device), torch.arange(w, device=img.device), indexing="ij"
    )
    a = math.radians(p["angle"])
    u, v = xx * math.cos(a) + yy * math.sin(a), -xx * math.sin(a) + yy * math.cos(a)
    screen = 0.5 + 0.25 * (
        torch.cos(2 * math.pi * u / p["period"]) + torch.cos(2 * math.pi * v / p["period"])
    )
    lum = luminance(img)
    dots = (lum > screen.to(img.dtype)).to(img.dtype)
    chroma = (img / lum.clamp_min(0.05)).clamp(0, 1)  # the ink's colour at full strength
    return img * (1 - p["mix"]) + p["mix"] * dots * chroma


def sample_vignette(rng: np.random.Generator, h: int, w: int) -> dict:
    return {
        "strength": float(rng.uniform(0.15, 0.6)),
        "radius": float(rng.uniform(0.5, 0.9)),
        "cx": float(rng.uniform(0.4, 0.6)),
        "cy": float(rng.uniform(0.4, 0.6)),
    }


def apply_vignette(img: torch.Tensor, p: dict) -> torch.Tensor:
    h, w = img.shape[-2:]
    yy = torch.linspace(0, 1, h, device=img.device).view(h, 1)
    xx = torch.linspace(0, 1, w, device=img.device).view(1, w)
    r = torch.sqrt((xx - p["cx"]) ** 2 + (yy - p["cy"]) ** 2) / math.sqrt(0.5)
    fall = 1 - p["strength"] * ((r - p["radius"]).clamp_min(0) / max(1e-6, 1 - p["radius"])).clamp(0, 1) ** 2
    return img * fall.to(img.dtype)
