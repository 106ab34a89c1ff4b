"""Real photographs that install from Debian's package registry, for training and held-out
validation (``apt-get install mate-backgrounds``). Each file is pinned by its sha256; a model
card lists the ones it was trained on with their package, version and licence."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

PACKAGE = {
    "package": "mate-backgrounds",
    "version": "1.26.0-1",
    "licence": "GPL-2+",
    "source": "https://git.mate-desktop.org/mate-backgrounds/",
}
ROOT = Path("/usr/share/backgrounds/mate/nature")
SHA256 = {
    "Aqua.jpg": "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce",
    "Blinds.jpg": "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600",
    "Dune.jpg": "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91",
    "FreshFlower.jpg": "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e",
    "Garden.jpg": "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78",
    "GreenMeadow.jpg": "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832",
    "LadyBird.jpg": "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d",
    "RainDrops.jpg": "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16",
    "Storm.jpg": "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957",
    "TwoWings.jpg": "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb",
    "Wood.jpg": "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07",
    "YellowFlower.jpg": "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306",
}
# Strongly textured (grass, wood grain with thin bright lines): held out, never trained on.
HELD_OUT = ("GreenMeadow.jpg", "Wood.jpg")
TRAIN = tuple(n for n in SHA256 if n not in HELD_OUT)
LONG_SIDE = 1024  # wallpapers are 1280-2560 px; scaled to a print scan's scale of detail


def available(root: Path = ROOT) -> bool:
    return all((root / name).is_file() for name in SHA256)


def load(names: tuple[str, ...], root: Path = ROOT, long_side: int = LONG_SIDE) -> dict[str, np.ndarray]:
    """The named photographs as uint8 RGB arrays (long side ``long_side``), each checked against
    its pinned sha256: a different file is refused, not silently trained on."""
    return {f"mate:{name}": _read_pinned(root / name, SHA256[name], PACKAGE, long_side) for name in names}


def _read_pinned(path: Path, sha256: str, package: dict, long_side: int) -> np.ndarray:
    """One photograph as uint8 RGB (long side at most ``long_side``), refused unless its sha256 is
    the pinned one."""
    from PIL import Image

    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != sha256:
        raise ValueError(f"{path}: sha256 {actual} is not {package['package']} {package['version']}'s")
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = long_side / max(im.size)
        if scale < 1:
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        return np.asarray(im)


def card_entries(names: tuple[str, ...]) -> list[dict]:
    """What a model card says of each photograph it was trained or validated on."""
    return [PACKAGE | {"file": str(ROOT / n), "sha256": SHA256[n]} for n in names]


# -- KDE Plasma's wallpapers (apt-get install plasma-workspace-wallpapers) ---------------------
# The photographs among them (the rest are drawings): several are low in contrast on purpose
# (fog over a jetty, a lake at dusk), pictures a tone estimator must learn to leave alone.

PLASMA = {
    "package": "plasma-workspace-wallpapers",
    "version": "4:5.27.5-2",
    "source": "https://invent.kde.org/plasma/plasma-workspace-wallpapers",
}
PLASMA_ROOT = Path("/usr/share/wallpapers")
# name: (file under PLASMA_ROOT, sha256, author, licence: the file's metadata.json)
PLASMA_PHOTOS = {
    "BytheWater": (
        "BytheWater/contents/images/1920x1080.jpg",
        "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f",
        "Maciej Wiklo",
        "LGPL-3",
    ),
    "ColdRipple": (
        "ColdRipple/contents/images/1920x1080.jpg",
        "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f",
        "Risto Saukonpää",
        "LGPL-3",
    ),
    "ColorfulCups": (
        "ColorfulCups/contents/images/2560x1600.jpg",
        "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d",
        "Dmitri Popov",
        "LGPL-3",
    ),
    "DarkestHour": (
        "DarkestHour/contents/images/1920x1080.jpg",
        "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce",
        "Risto Saukonpää",
        "LGPL-3",
    ),
    "EveningGlow": (
        "EveningGlow/contents/images/1920x1080.jpg",
        "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a",
        "Ian Hex",
        "LGPL-3",
    ),
    "FallenLeaf": (
        "FallenLeaf/contents/images/1920x1080.jpg",
        "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de",
        "Martin Klapetek",
        "LGPL-3",
    ),
    "Grey": (
        "Grey/contents/images/1920x1080.jpg",
        "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed",
        "Sigi Sagi",
        "LGPL-3",
    ),
    "OneStandsOut": (
        "OneStandsOut/contents/images/1920x1080.jpg",
        "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd",
        "Risto Saukonpää",
        "LGPL-3",
    ),
    "Path": (
        "Path/contents/images/1920x1080.jpg",
        "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8",
        "Risto Saukonpää",
        "LGPL-3",
    ),
    "Volna": (
        "Volna/contents/images/5120x2880.jpg",
        "abc30b4fc6f6a83b6156e6b59ac283c067de40af820aafac8ac7c4fd83a9607c",
        "Nikita Babin",
        "CC-BY-SA-4.0",
    ),
    "summer_1am": (
        "summer_1am/contents/images/1920x1080.jpg",
        "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8",
        "Risto Saukonpää",
        "LGPL-3",
    ),
}


def plasma_available(root: Path = PLASMA_ROOT) -> bool:
    return all((root / entry[0]).is_file() for entry in PLASMA_PHOTOS.values())


def load_plasma(root: Path = PLASMA_ROOT, long_side: int = LONG_SIDE) -> dict[str, np.ndarray]:
    """Plasma's photographs as uint8 RGB arrays (``plasma:Name``), each checked against its sha256."""
    return {
        f"plasma:{name}": _read_pinned(root / path, sha256, PLASMA, long_side)
        for name, (path, sha256, _, _) in PLASMA_PHOTOS.items()
    }


def plasma_card_entries() -> list[dict]:
    return [
        PLASMA | {"file": str(PLASMA_ROOT / path), "sha256": sha, "author": author, "licence": licence}
        for path, sha, author, licence in PLASMA_PHOTOS.values()
    ]
