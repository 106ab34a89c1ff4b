"""Real photographs that install from Debian's package registry, for training and held-out
validation (``apt-get install mate-backgrounds``). Each file is pinned by its sha256; a model
card lists the ones it was trained on with their package, version and licence."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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


# -- More photographs from Debian's wallpaper packages ----------------------------------------


@dataclass(frozen=True)
class Collection:
    """The photographs (not the drawings) of one Debian wallpaper package, each pinned by its sha256
    with its author and licence (the package's copyright or metadata file). Loaded as
    ``prefix:Name``; ``held_out`` are never trained on."""

    prefix: str
    package: str
    version: str
    source: str
    root: Path
    photos: dict[str, tuple[str, str, str, str]]  # name: (file under root, sha256, author, licence)
    held_out: tuple[str, ...] = ()

    def names(self, held_out: bool = False) -> tuple[str, ...]:
        """The training photographs, or (``held_out``) the held-out ones."""
        return tuple(n for n in self.photos if (n in self.held_out) == held_out)

    def available(self, root: Path | None = None) -> bool:
        return all(((root or self.root) / entry[0]).is_file() for entry in self.photos.values())

    def load(
        self, names: tuple[str, ...] | None = None, root: Path | None = None, long_side: int = LONG_SIDE
    ) -> dict[str, np.ndarray]:
        """The named photographs (default: the training ones) as uint8 RGB arrays, each checked
        against its sha256."""
        release = {"package": self.package, "version": self.version}
        return {
            f"{self.prefix}:{name}": _read_pinned(
                (root or self.root) / self.photos[name][0], self.photos[name][1], release, long_side
            )
            for name in (self.names() if names is None else names)
        }

    def card_entries(self) -> list[dict]:
        release = {"package": self.package, "version": self.version, "source": self.source}
        return [
            release | {"file": str(self.root / path), "sha256": sha, "author": author, "licence": licence}
            for path, sha, author, licence in self.photos.values()
        ]


def more_photographs(
    roots: dict[str, Path] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[dict]]:
    """The extra collections' training and held-out photographs, and their card entries: what the
    training commands add to mate-backgrounds'. By default every collection installed here; with
    ``roots`` ({"lomiri": folder, …}, a lent GPU's copies laid out as the package installs them)
    only those, read from there (a missing or different file is refused)."""
    train, held_out, entries = {}, {}, []
    for collection in MORE:
        wanted = collection.available() if roots is None else collection.prefix in roots
        if not wanted:
            continue
        root = None if roots is None else roots[collection.prefix]
        train |= collection.load(collection.names(), root)
        held_out |= collection.load(collection.names(held_out=True), root)
        entries += collection.card_entries()
    return train, held_out, entries


# KDE Plasma's wallpapers (apt-get install plasma-workspace-wallpapers): several are low in contrast
# on purpose (fog over a jetty, a lake at dusk), pictures a tone estimator must learn to leave alone.
PLASMA = Collection(
    prefix="plasma",
    package="plasma-workspace-wallpapers",
    version="4:5.27.5-2",
    source="https://invent.kde.org/plasma/plasma-workspace-wallpapers",
    root=Path("/usr/share/wallpapers"),
    photos={
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
    },
)

# Lomiri's wallpapers as shipped with Ubuntu Touch 16.04 (apt-get install lomiri-wallpapers-16.04;
# authors and licences from its copyright file): the photographs are full of thin bright lines
# that belong to the picture (a bridge's cables, clock hands, weatherboards, a dragonfly's stalk,
# glints on wet rock), which a crack detector must leave alone. Two are held out.
LOMIRI = Collection(
    prefix="lomiri",
    package="lomiri-wallpapers-16.04",
    version="20.04.0-2",
    source="https://gitlab.com/ubports/development/core/lomiri-wallpapers",
    root=Path("/usr/share/backgrounds"),
    photos={
        "Bridge": (
            "Bridge_by_Sander_Klootwijk.jpg",
            "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050",
            "Sander Klootwijk",
            "CC-BY-SA-4.0",
        ),
        "Dragonfly": (
            "Dragonfly_by_Bolly.jpg",
            "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3",
            "Bolly",
            "CC-BY-SA-4.0",
        ),
        "Picture_0B": (
            "Picture_0B_by_freespace.jpg",
            "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad",
            'Trevor "Freespace"',
            "CC-BY-4.0",
        ),
        "Picture_1A": (
            "Picture_1A_by_freespace.jpg",
            "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b",
            'Trevor "Freespace"',
            "CC-BY-4.0",
        ),
        "Wine": (
            "Wine_by_Jakkub_Mede.jpg",
            "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74",
            "Jakub Mede",
            "CC-BY-4.0",
        ),
        "aitzgorri": (
            "aitzgorri_by_Aitzol_Berasategi.jpg",
            "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36",
            "Aitzol Berasategi",
            "CC-BY-4.0",
        ),
        "free": (
            "free_by_Peter_Nerlich.jpg",
            "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373",
            "Peter Nerlich",
            "CC-BY-SA-4.0",
        ),
        "friends": (
            "friends_by_Aitzol_Berasategi.jpg",
            "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d",
            "Aitzol Berasategi",
            "CC-BY-4.0",
        ),
        "greentock": (
            "greentock_by_Peter_Nerlich.jpg",
            "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889",
            "Peter Nerlich",
            "CC-BY-SA-4.0",
        ),
        "life": (
            "life_by_Aitzol_Berasategi.jpg",
            "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05",
            "Aitzol Berasategi",
            "CC-BY-4.0",
        ),
        "picosdeeuropa": (
            "picosdeeuropa_by_Aitzol_Berasategi.jpg",
            "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a",
            "Aitzol Berasategi",
            "CC-BY-4.0",
        ),
        "seeding": (
            "seeding_by_Clements_Engelhardt.jpg",
            "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f",
            "Clemens Engelhardt",
            "CC0-1.0",
        ),
        "sunset": (
            "sunset_by_Aitzol_Berasategi.jpg",
            "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18",
            "Aitzol Berasategi",
            "CC-BY-4.0",
        ),
    },
    held_out=("Wine", "greentock"),
)
MORE = (PLASMA, LOMIRI)
