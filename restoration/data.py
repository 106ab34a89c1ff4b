"""Training and validation data: clean images, random crops, degraded on the fly with a seed."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from restoration.degrade import DegradationConfig, Degraded, degrade

# Bundled clean images (scikit-image, matplotlib). Two are held out for validation.
TRAIN_IMAGES = (
    "astronaut",
    "camera",
    "chelsea",
    "coins",
    "moon",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "grass",
    "gravel",
    "page",
    "text",
    "colorwheel",
)
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


def data_card(train: dict[str, np.ndarray], validation: dict[str, np.ndarray]) -> dict[str, object]:
    """What a checkpoint's card records of its data: the images' names and each set's digest."""
    return {
        "train": sorted(train),
        "train_digest": digest(train),
        "validation": sorted(validation),
        "validation_digest": digest(validation),
    }


def digest(images: dict[str, np.ndarray]) -> str:
    """sha256 over the names and pixels of a data set: the card's training-data digest."""
    h = hashlib.sha256()
    for name in sorted(images):
        h.update(name.encode())
        h.update(np.ascontiguousarray(images[name]).tobytes())
    return h.hexdigest()


class Focus:
    """Points of interest in the training images (``points[i]``: image ``i``'s [k, 2] array of
    (row, column)), and the share of crops to centre on one of them: hard examples, such as the
    thin picture structures a previous detector mistook for damage on clean photographs, seen far
    more often than uniform crops would show them."""

    def __init__(self, points: list[np.ndarray], share: float):
        if not 0 <= share <= 1:
            raise ValueError(f"the focus share must be in [0, 1], not {share}")
        self.points, self.share = points, share
        self.images = [i for i, p in enumerate(points) if len(p)]

    def draw(self, rng: np.random.Generator) -> tuple[int, int, int] | None:
        """(image, row, column) for a crop to centre on, or None for a uniform crop."""
        if not self.images or rng.random() >= self.share:
            return None
        i = self.images[int(rng.integers(len(self.images)))]
        row, col = self.points[i][int(rng.integers(len(self.points[i])))]
        return i, int(row), int(col)


def random_crops(
    images: list[np.ndarray],
    n: int,
    size: int,
    rng: np.random.Generator,
    augment: bool = False,
    focus: Focus | None = None,
    zoom: float = 2.0,
) -> torch.Tensor:
    """``n`` random crops (with flips and 90-degree turns) as [n, 3, size, size] floats in [0, 1].

    ``augment`` also zooms out (a region up to ``zoom`` times the crop's side, downsampled with a
    Lanczos filter: the same scene at new scales of texture, grain and edges) and shuffles the colour
    channels (new hues from the same structure). Fourteen training photographs are few: without
    it the restorer learned their textures and lost on held-out photographs what it gained on them.
    A larger ``zoom`` shows whole scenes at the size a scanned print shows them (a wallpaper's
    1920 px as a 300 px print): eyes, collars, stars and windows a few pixels wide.

    With ``focus``, a share of the crops is centred on one of its points instead (see :class:`Focus`).
    """
    from PIL import Image

    crops = []
    for _ in range(n):
        point = focus.draw(rng) if focus is not None else None
        i = point[0] if point is not None else int(rng.integers(len(images)))
        img = images[i]
        h, w = img.shape[:2]
        out = float(rng.uniform(1.0, zoom)) if augment else 1.0
        s = min(round(size * out), h, w)
        if point is not None:  # the point at the crop's centre, as far as the picture's edges allow
            y, x = (
                int(np.clip(c - s // 2, 0, limit - s)) for c, limit in zip(point[1:], (h, w), strict=True)
            )
        else:
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


def training_batch(
    images: list[np.ndarray],
    step: int,
    seed: int,
    batch: int,
    size: int,
    config: DegradationConfig,
    augment: bool = False,
    visible: float = 0.0,
    focus: Focus | None = None,
    zoom: float = 2.0,
) -> Degraded:
    """The batch of a step is a function of (seed, step): training is reproducible and resumable."""
    rng = np.random.default_rng([seed, step])
    return degrade(random_crops(images, batch, size, rng, augment, focus, zoom), rng, config, visible)


def validation_set(
    images: list[np.ndarray], seed: int, size: int, per_image: int, config: DegradationConfig
) -> Degraded:
    rng = np.random.default_rng([seed, 10**9])
    clean = torch.cat([random_crops([img], per_image, size, rng) for img in images])
    return degrade(clean, rng, config)


class StepBatches(torch.utils.data.Dataset):
    """Item ``i`` is ``make(start + i)``: a batch is a function of the seed and the step alone, so
    batches built in worker processes are exactly those the training process would build."""

    def __init__(self, make, start: int, stop: int):
        self.make, self.start, self.stop = make, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, i: int):
        return self.make(self.start + i)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # each worker builds one batch at a time; the trainer has the cores


def batch_loader(make, start: int, stop: int, workers: int = 0):
    """Batches ``make(step)`` for ``start <= step < stop``, in order: built in ``workers`` worker
    processes (so a GPU is not idle while the CPU synthesises damage), or in-process with 0.
    ``make`` must be picklable (a module-level function or a ``functools.partial`` of one)."""
    if workers <= 0:
        return (make(step) for step in range(start, stop))
    # Spawned, not forked: a fork copies the parent's threads' locks and handlers (a Prefect server,
    # an event loop), and forked workers died at once inside the full test suite.
    return torch.utils.data.DataLoader(
        StepBatches(make, start, stop),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        prefetch_factor=4,
        worker_init_fn=_one_thread,
        multiprocessing_context="spawn",
    )


def step_batch(
    images: list[np.ndarray],
    seed: int,
    batch: int,
    size: int,
    config: DegradationConfig,
    augment: bool,
    step: int,
    visible: float = 0.0,
    focus: Focus | None = None,
    zoom: float = 2.0,
) -> Degraded:
    """:func:`training_batch` with the step last, for ``functools.partial`` and :func:`batch_loader`."""
    return training_batch(images, step, seed, batch, size, config, augment, visible, focus, zoom)
