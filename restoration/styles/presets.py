"""Process emulations: deterministic renderings of historical photographic processes.

Each preset maps an RGB image (float [B, 3, H, W] in [0, 1]) to the look of a process: a tone
curve, a colour mapping (toning, dyes, paper), and the process's texture and typical defects
(grain, paper fibre, foxing, tarnish, starch grains), blended with the input by ``strength``.
Everything is pixel-wise or drawn from position-defined fields (``fields``): no statistics of
the image or tile are used, so tiles join without seams, and float32 keeps 16-bit precision.

A preset's ``version`` changes whenever its rendering does: a catalogue records derivatives by
preset name and version, so older renderings stay reproducible from the code history and a new
rendering is a reprocess.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from restoration.degrade.tone import luminance
from restoration.styles import fields
from restoration.styles.fields import Placement

Render = Callable[[torch.Tensor, dict[str, Any], Placement], torch.Tensor]


@dataclass(frozen=True)
class Preset:
    name: str
    version: str
    era: str
    note: str  # the process it imitates, in a few sentences
    defaults: dict[str, Any]
    render: Render = field(repr=False, compare=False)

    def params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The defaults with ``overrides``; unknown names are an error (a typo must not pass)."""
        overrides = overrides or {}
        unknown = set(overrides) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"preset {self.name!r} has no parameter(s) {sorted(unknown)}; it has {sorted(self.defaults)}"
            )
        return self.defaults | {k: _coerce(self.defaults[k], v) for k, v in overrides.items()}

    @property
    def digest(self) -> str:
        """sha256 of the preset's identity (name, version, defaults): the 'weights' of a preset."""
        spec = json.dumps(
            {"name": self.name, "version": self.version, "defaults": self.defaults}, sort_keys=True
        )
        return hashlib.sha256(spec.encode()).hexdigest()

    def apply(
        self,
        img: torch.Tensor,
        strength: float = 1.0,
        params: dict[str, Any] | None = None,
        at: Placement | None = None,
    ) -> torch.Tensor:
        """Style ``img`` (a tile of the image ``at`` describes; the whole image by default)."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be between 0 and 1, not {strength}")
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        img = img.float()
        styled = self.render(img, self.params(params), at or Placement.whole(img)).clamp(0, 1)
        return torch.lerp(img, styled, strength)


def _coerce(default: Any, value: Any) -> Any:
    """A value (from a command line: a string) as the default's type; tuples as "a,b,c"."""
    if isinstance(default, tuple):
        parts = value.split(",") if isinstance(value, str) else list(value)
        if len(parts) != len(default):
            raise ValueError(f"expected {len(default)} comma-separated numbers, not {value!r}")
        return tuple(float(p) for p in parts)
    return type(default)(value)


PRESETS: dict[str, Preset] = {}


def register_preset(preset: Preset) -> Preset:
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} is already registered")
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown style {name!r}; presets: {', '.join(sorted(PRESETS))}") from None


# -- building blocks -----------------------------------------------------------------------------


def _rgb(values, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


def curve(x: torch.Tensor, contrast: float = 0.0, gamma: float = 1.0) -> torch.Tensor:
    """A tone curve: a power ``gamma``, then an S-curve through mid-grey (``contrast`` > 0
    steepens the mid-tones, < 0 flattens them); 0 and 1 stay where they are."""
    x = x.clamp(0, 1) ** gamma
    if abs(contrast) < 1e-6:
        return x
    k = 6.0 * abs(contrast)
    lo, hi = torch.sigmoid(torch.tensor(-k / 2)), torch.sigmoid(torch.tensor(k / 2))
    if contrast > 0:
        return (torch.sigmoid(k * (x - 0.5)) - lo) / (hi - lo)
    y = lo + x * (hi - lo)  # the inverse S: flatter mid-tones, steeper ends
    return (0.5 + torch.log(y / (1 - y)) / k).clamp(0, 1)


def ramp(l: torch.Tensor, stops: list[tuple[float, tuple[float, float, float]]]) -> torch.Tensor:
    """Map luminance [B, 1, H, W] through colour stops (position, RGB), linearly between them."""
    pos = torch.tensor([s[0] for s in stops], dtype=l.dtype, device=l.device)
    col = torch.tensor([s[1] for s in stops], dtype=l.dtype, device=l.device)  # [n, 3]
    idx = torch.bucketize(l.clamp(0, 1), pos).clamp(1, len(stops) - 1)
    a, b = pos[idx - 1], pos[idx]
    t = ((l - a) / (b - a).clamp_min(1e-6)).clamp(0, 1)
    lo, hi = col[idx - 1][:, 0], col[idx][:, 0]  # [B, H, W, 3]
    return torch.lerp(lo, hi, t[:, 0, ..., None]).permute(0, 3, 1, 2)


def saturate(img: torch.Tensor, amount: float) -> torch.Tensor:
    l = luminance(img)
    return l + amount * (img - l)


def _grain(
    img: torch.Tensor, at: Placement, seed: int, amount: float, size: float, colour: bool
) -> torch.Tensor:
    """Add grain strongest in the mid-tones (where silver or dye clouds show most)."""
    if amount <= 0:
        return img
    h, w = img.shape[-2:]
    n = 3 if colour else 1
    g = torch.stack([fields.grain(at, h, w, seed + i, size, img.device) for i in range(n)])[None]
    l = luminance(img)
    return img + amount * g * (4 * l * (1 - l)).clamp_min(0.15)


def _vignette(img: torch.Tensor, at: Placement, amount: float, power: float = 2.5) -> torch.Tensor:
    if amount <= 0:
        return img
    r = fields.radius(at, img.shape[-2], img.shape[-1], img.device)
    return img * (1 - amount * r**power)


def _texture(img: torch.Tensor, at: Placement, seed: int, amount: float, cell: float) -> torch.Tensor:
    """Paper texture: a gentle multiplicative mottle of about ``cell`` pixels."""
    if amount <= 0:
        return img
    v = fields.value(at, img.shape[-2], img.shape[-1], seed, cell, img.device)
    return img * (1 + amount * (v - 0.5))


def _finish(img: torch.Tensor, p: dict[str, Any], at: Placement, colour: bool = False) -> torch.Tensor:
    img = _grain(img, at, p["seed"], p["grain"], p["grain_size"], colour)
    return _vignette(img, at, p["vignette"])


# -- the processes -------------------------------------------------------------------------------


def _albumen(img, p, at):
    l = curve(luminance(img), p["contrast"], p["gamma"])
    toned = ramp(
        l,
        [
            (0.0, (0.09, 0.04, 0.06)),
            (0.3, (0.30, 0.16, 0.15)),
            (0.65, (0.66, 0.50, 0.36)),
            (1.0, (0.97, 0.91, 0.76)),
        ],
    )
    paper = _rgb((0.95, 0.85, 0.60), img)
    toned = torch.lerp(
        toned, toned * paper / 0.97, p["yellowing"] * l**2
    )  # aged albumen yellows in the whites
    h, w = img.shape[-2:]
    fox = fields.spots(at, h, w, p["seed"] + 11, 64, p["foxing"], 3.0, img.device)[None, None]
    toned = torch.lerp(toned, _rgb((0.55, 0.36, 0.18), img), 0.7 * fox)
    toned = _texture(toned, at, p["seed"] + 5, 0.04, 24)
    return _finish(toned, p, at)


def _cyanotype(img, p, at):
    l = curve(luminance(img), p["contrast"], p["gamma"])
    toned = ramp(
        l,
        [
            (0.0, (0.02, 0.08, 0.26)),
            (0.4, (0.10, 0.29, 0.55)),
            (0.8, (0.52, 0.68, 0.84)),
            (1.0, (0.88, 0.92, 0.94)),
        ],
    )
    toned = _texture(toned, at, p["seed"] + 5, p["paper"], 10)
    return _finish(toned, p, at)


def _daguerreotype(img, p, at):
    l = curve(luminance(img), p["contrast"], p["gamma"])
    silver = ramp(l, [(0.0, (0.07, 0.07, 0.08)), (0.5, (0.50, 0.51, 0.53)), (1.0, (0.85, 0.86, 0.88))])
    h, w = img.shape[-2:]
    near = (1 - fields.edge(at, h, w, img.device) / p["tarnish_band"]).clamp(0, 1) ** 2
    patchy = fields.value(at, h, w, p["seed"] + 21, 48, img.device)
    t = (p["tarnish"] * near * (0.5 + patchy))[None, None]
    hue = fields.value(at, h, w, p["seed"] + 22, 96, img.device)[None, None]
    tint = ramp(hue, [(0.0, (0.25, 0.35, 0.70)), (0.5, (0.60, 0.30, 0.55)), (1.0, (0.70, 0.48, 0.22))])
    silver = torch.lerp(silver, silver * 0.4 + tint * 0.5, t.clamp(0, 1))
    pits = fields.spots(at, h, w, p["seed"] + 23, 40, p["pits"], 1.2, img.device)[None, None]
    silver = silver * (1 - 0.7 * pits)
    return _finish(silver, p, at)


def _platinum(img, p, at):
    l = curve(luminance(img), p["contrast"], p["gamma"])
    warm = p["warmth"]  # 0: platinum (neutral), 1: palladium (warm brown)
    black = (0.13 + 0.05 * warm, 0.12 + 0.02 * warm, 0.11 - 0.01 * warm)
    mid = (0.52 + 0.06 * warm, 0.50 + 0.01 * warm, 0.47 - 0.05 * warm)
    toned = ramp(l, [(0.0, black), (0.5, mid), (1.0, (0.93, 0.91, 0.86))])
    toned = _texture(toned, at, p["seed"] + 5, p["paper"], 6)
    return _finish(toned, p, at)


def _autochrome(img, p, at):
    base = curve(saturate(img, p["saturation"]), 0.0, p["gamma"]) * _rgb((1.0, 0.96, 0.86), img)
    h, w = img.shape[-2:]
    # The starch-grain screen: each spot of the plate lies behind the dye whose (position-defined)
    # noise field is highest there, which gives irregular grains of about ``grain_px``.
    noise = torch.stack(
        [fields.value(at, h, w, p["seed"] + 31 + i, p["grain_px"], img.device) for i in range(3)]
    )
    pick = torch.softmax(noise * 60, dim=0)[None]  # [1, 3 dyes, H, W]
    dyes = torch.tensor([(1.0, 0.42, 0.20), (0.30, 0.80, 0.28), (0.32, 0.30, 0.95)], device=img.device)
    screen = torch.einsum("bdhw,dc->bchw", pick, dyes)
    through = base * screen * 1.9  # the light each grain lets through
    out = torch.lerp(base, through, p["screen"])
    return _finish(out, p, at, colour=True)


def _kodachrome(img, p, at):
    out = saturate(img, p["saturation"]) * _rgb(p["balance"], img)
    out = curve(out.clamp(0, 1), p["contrast"], p["gamma"])
    return _finish(out, p, at, colour=True)


def _faded_1970s(img, p, at):
    # Work in dye densities: the cyan dye (which absorbs red) fades fastest in the dark, the
    # yellow dye fastest in light; so prints drift to red and magenta, and lose contrast.
    density = -torch.log10(img.clamp_min(1e-3))
    keep = _rgb((1 - p["cyan_fade"], 1 - p["magenta_fade"], 1 - p["yellow_fade"]), img)
    out = 10 ** (-density * keep)
    out = saturate(out, p["saturation"])
    out = p["lift"] + (1 - p["lift"]) * out  # no deep blacks left
    stain = _rgb((1.0, 0.97, 0.86), img)
    out = torch.lerp(out, out * stain, p["stain"] * luminance(out))  # yellowed whites
    return _finish(out, p, at, colour=True)


_COMMON = {"grain": 0.02, "grain_size": 1.2, "vignette": 0.2, "seed": 0}

for _preset in (
    Preset(
        "albumen",
        "v1",
        "1850s–1890s",
        "Albumen print: a silver image in an egg-white binder on thin paper, usually gold-toned. "
        "Purple-brown shadows, warm mid-tones, and whites that yellow as the albumen ages; "
        "brown foxing spots and a soft fall-off at the edges.",
        _COMMON | {"contrast": 0.25, "gamma": 1.05, "yellowing": 0.5, "foxing": 0.08, "grain": 0.015},
        _albumen,
    ),
    Preset(
        "cyanotype",
        "v1",
        "1842–1920s",
        "Cyanotype (Herschel, 1842): iron salts reduced by light to Prussian blue; used for "
        "botanical records, proofs and blueprints. Deep blue shadows, pale blue-white paper, "
        "a visible paper texture.",
        _COMMON
        | {"contrast": 0.2, "gamma": 1.0, "paper": 0.06, "grain": 0.01, "grain_size": 2.0, "vignette": 0.1},
        _cyanotype,
    ),
    Preset(
        "daguerreotype",
        "v1",
        "1839–1860s",
        "Daguerreotype: an image on a polished, silvered copper plate. Neutral, cool silver "
        "greys with soft highlights and little grain; tarnish creeping in from the plate's edges "
        "in blue, magenta and amber halos, and small pits. (Plates are mirror images; the "
        "emulation does not flip the picture.)",
        _COMMON
        | {
            "contrast": -0.15,
            "gamma": 0.95,
            "tarnish": 0.8,
            "tarnish_band": 0.18,
            "pits": 0.12,
            "grain": 0.006,
            "grain_size": 0.8,
        },
        _daguerreotype,
    ),
    Preset(
        "platinum",
        "v1",
        "1873–1920s",
        "Platinum/palladium print: the metal lies in the paper fibres, not on a coating. A very "
        "long, smooth tonal scale with matte, never-quite-black shadows; neutral grey for "
        "platinum, warm brown for palladium (``warmth``).",
        _COMMON
        | {
            "contrast": -0.1,
            "gamma": 0.95,
            "warmth": 0.4,
            "paper": 0.05,
            "grain": 0.008,
            "grain_size": 1.6,
            "vignette": 0.12,
        },
        _platinum,
    ),
    Preset(
        "autochrome",
        "v1",
        "1907–1930s",
        "Lumière Autochrome: a glass plate screened with potato-starch grains dyed orange-red, "
        "green and blue-violet over a panchromatic emulsion. Soft, pointillist colour from the "
        "grains, muted saturation, a dense and warm plate.",
        _COMMON
        | {
            "saturation": 0.8,
            "gamma": 1.1,
            "grain_px": 2.0,
            "screen": 0.3,
            "grain": 0.03,
            "grain_size": 1.5,
            "vignette": 0.25,
        },
        _autochrome,
    ),
    Preset(
        "kodachrome",
        "v1",
        "1950s–1960s",
        "Kodachrome slide: a dye-coupled reversal film with stable dyes. Saturated reds and "
        "yellows, deep blue skies, dense blacks, high contrast and fine grain.",
        _COMMON
        | {
            "saturation": 1.35,
            "contrast": 0.35,
            "gamma": 1.08,
            "balance": (1.04, 1.0, 0.95),
            "grain": 0.012,
            "grain_size": 0.9,
            "vignette": 0.12,
        },
        _kodachrome,
    ),
    Preset(
        "faded-1970s",
        "v1",
        "1970s",
        "A faded chromogenic colour print of the 1970s: the cyan dye has faded most, so the "
        "print has drifted to red and magenta; blacks are lifted, contrast and saturation are "
        "low, and the whites have yellowed.",
        _COMMON
        | {
            "cyan_fade": 0.45,
            "magenta_fade": 0.12,
            "yellow_fade": 0.2,
            "saturation": 0.8,
            "lift": 0.1,
            "stain": 0.35,
            "grain": 0.02,
            "vignette": 0.15,
        },
        _faded_1970s,
    ),
):
    register_preset(_preset)
