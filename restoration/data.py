"""Training and validation data: clean images, random crops, degraded on the fly with a seed."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from restoration.degrade import DegradationConfig, Degraded, degrade

# Bundled clean images (scikit-image, matplotlib). Two are held out for validation.
TRAIN_IMAGES = ("astronaut", "camera", "chelsea", "coins", "moon", "clock", "hubble_deep_field",
                "immunohistochemistry", "brick", "grass", "gravel", "page", "text", "colorwheel")  # fmt: skip
VALIDATION_IMAGES = ("coffee", "rocket", "grace_hopper")


def bundled_images(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Named clean images as uint8 RGB arrays (grey ones repeated to three channels)."""
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    out = {}
    for name in names:
        if name == "grace_hopper":
            with cbook.get_sample_data("grace_hopper.jpg") as fh:
                arr = np.asarray(Image.open(fh).convert("RGB"))
        else:
            arr = getattr(data, name)()
        arr = np.asarray(arr)
        arr = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr[..., :3]
        out[name] = np.ascontiguousarray(arr.astype(np.uint8))
    return out


def digest(images: dict[str, np.ndarray]) -> str:
    """sha256 over the names and pixels of a data set: the card's training-data digest."""
    h = hashlib.sha256()
    for name in sorted(images):
        h.update(name.encode())
        h.update(np.ascontiguousarray(images[name]).tobytes())
    return h.hexdigest()


def random_crops(images: list[np.ndarray], n: int, size: int, rng: np.random.Generator,
                 augment: bool = False) -> torch.Tensor:  # fmt: skip
    """``n`` random crops (with flips and 90-degree turns) as [n, 3, size, size] floats in [0, 1].

    ``augment`` also zooms out (a region up to twice the crop's side, downsampled with a Lanczos
    filter: the same scene at new scales of texture, grain and edges) and shuffles the colour
    channels (new hues from the same structure). Fourteen training photographs are few: without
    it the restorer learned their textures and lost on held-out photographs what it gained on them.
    """
    from PIL import Image

    crops = []
    for _ in range(n):
        img = images[int(rng.integers(len(images)))]
        h, w = img.shape[:2]
        zoom = float(rng.uniform(1.0, 2.0)) if augment else 1.0
        s = min(round(size * zoom), h, w)
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        crop = img[y : y + s, x : x + s]
        if s > size:
            crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS))
            s = size
        if augment:
            crop = crop[..., rng.permutation(3)]
        crop = np.rot90(crop, k=int(rng.integers(4)))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if s < size:  # small images are padded by reflection
            crop = np.pad(crop, ((0, size - s), (0, size - s), (0, 0)), mode="reflect")
        crops.append(np.ascontiguousarray(crop))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0


def training_batch(images: list[np.ndarray], step: int, seed: int, batch: int, size: int,
                   config: DegradationConfig, augment: bool = False) -> Degraded:  # fmt: skip
    """The batch of a step is a function of (seed, step): training is reproducible and resumable."""
    rng = np.random.default_rng([seed, step])
    return degrade(random_crops(images, batch, size, rng, augment), rng, config)


def validation_set(images: list[np.ndarray], seed: int, size: int, per_image: int, config: DegradationConfig) -> Degraded:
    rng = np.random.default_rng([seed, 10**9])
    clean = torch.cat([random_crops([img], per_image, size, rng) for img in images])
    return degrade(clean, rng, config)
