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
    from PIL import Image

    out = {}
    for name in names:
        data = (root / name).read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != SHA256[name]:
            raise ValueError(
                f"{root / name}: sha256 {actual} is not {PACKAGE['package']} {PACKAGE['version']}'s"
            )
        with Image.open(root / name) as im:
            im = im.convert("RGB")
            scale = long_side / max(im.size)
            if scale < 1:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
            out[f"mate:{name}"] = np.asarray(im)
    return out


def card_entries(names: tuple[str, ...]) -> list[dict]:
    """What a model card says of each photograph it was trained or validated on."""
    return [PACKAGE | {"file": str(ROOT / n), "sha256": SHA256[n]} for n in names]
