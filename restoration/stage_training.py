"""Training of the staged restorer's *detect* and *inpaint* stages, each on its own, and of the
enlarger (*upscale*, super-resolution, SRGAN-style: L1 + SSIM warm-up, then against a PatchGAN): seeded
(a batch is a function of seed and step), resumable, batches built in worker processes, losses
in float32, an EMA of the weights exported as a checkpoint with its card.

*detect* learns the damage mask of realistic synthetic damage (crack networks, creases, lost
corners, flaking, foxing, tide lines, scratches, dust) over prints that are also faded, yellowed,
grainy, stained, silvered and fingerprinted: those must not be marked. *inpaint* learns to
recover a picture (as it was before the damage: grain and all) inside damage-shaped holes; for
one that sees under its holes, only its keep head learns, over a blind inpainter's fill, with the
damage drawn in the holes, decoy holes over undamaged picture, and the holes a detector draws over
the damaged picture, false ones included: where what is under a hole is picture, keep it.
*denoise* learns to take grain, noise, blur, resampling and JPEG's blocks out of a picture whose
damage is already filled (:data:`DENOISE_PROBABILITIES`), and to leave a clean photograph as it is:
a share of its crops (``untouched``) is the photograph itself, the target its own input, so that
the texture of brick, foliage and a photograph's own grain is kept rather than smoothed as noise.
*upscale* learns to make a photograph ``scale`` times larger from a small copy made the way small
scans are (:mod:`restoration.degrade.enlarge`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from restoration import losses
from restoration.archs.pipeline import detect_probability, fill_holes, grow_by
from restoration.checkpoints import save_checkpoint
from restoration.data import Focus, batch_loader, random_crops, step_batch
from restoration.degrade import DegradationConfig, Degraded, degrade
from restoration.degrade.enlarge import EnlargeDegradation, make_small
from restoration.factory import create_model
from restoration.metrics import mask_f1, psnr, region_psnr, ssim
from restoration.training import begin_session

STATE = "training-state.pt"

# What the detector sees: the real prints' damage, and the look of old prints it must not mark.
DETECT_PROBABILITIES = {
    "gaussian_blur": 0.35,
    "resample": 0.2,
    "fading": 0.4,
    "yellowing": 0.5,
    "sepia": 0.3,
    "vignette": 0.3,
    "gaussian_noise": 0.3,
    "poisson_noise": 0.15,
    "film_grain": 0.4,
    "halftone": 0.03,
    "silvering": 0.15,
    "fingerprints": 0.1,
    "tape": 0.1,
    # No paper-white blobs (flaking, lost corners): with them the detector marked white collars, cup
    # rims and flag stars; a curator masks real emulsion loss.
    "craquelure": 0.55,
    # Cracks in relief (the picture still there, a lit lip and a shadow): the hairlines across the
    # faces of the real cracked portraits that paper-coloured cracks did not teach.
    "relief": 0.3,
    "creases": 0.15,
    "losses": 0.0,
    "flaking": 0.0,
    "foxing": 0.2,
    "water_stain": 0.15,
    # Cracks along a fold, long and straight: the picture's straight lines (lattices, outlines, below)
    # taught the detector to leave them (the real boy's and girl's fold cracks were marked only in
    # stretches).
    "folds": 0.3,
    "scratches": 0.35,
    "dust": 0.4,
    "cracks": 0.15,
    "tears": 0.1,
    "jpeg": 0.3,
    # The damaged print scanned: real cracks are soft, grainy and toned like the picture around them.
    "scan_gaussian_blur": 0.3,
    "scan_resample": 0.2,
    "scan_gaussian_noise": 0.2,
    "scan_film_grain": 0.3,
    "scan_yellowing": 0.25,
    "scan_fading": 0.2,
    # Thin straight lines and small strokes that belong to the picture (towers, railings, lettering),
    # and single thin curves and lines (spectacle rims, cup lips, clock hands, wires).
    "lattice": 0.15,
    "lettering": 0.15,
    "outlines": 0.2,
    # Highlights on shiny things (a spoon's bowl, a glazed cup's lip, an eye's catch-light): bright,
    # thin and curved like a crack, but soft and tapering. The coffee crop's spoon was marked.
    "glints": 0.2,
    # Small white flowers in a garden (daisies on dark leaves): v15's detector marked the petals of
    # the real autochrome old_b and the fill smeared them.
    "blossoms": 0.25,
    # Stars, dots and badges on a flat ground (a flag, a uniform): crisp, regular, pale shapes that
    # v15's detector took for flakes where a crop's edge cuts them (grace_hopper's flag).
    "emblems": 0.2,
}
# The pictures the inpainter fills holes in: a little blur, noise and grain, as scans have.
INPAINT_TONE = {
    "gaussian_blur": 0.3,
    "gaussian_noise": 0.3,
    "film_grain": 0.3,
    "yellowing": 0.3,
    "sepia": 0.2,
    "fading": 0.2,
    "jpeg": 0.2,
}
# The holes it fills: every shape of damage, often several at once.
INPAINT_HOLES = {
    "craquelure": 0.7,
    "creases": 0.15,
    "losses": 0.15,
    "flaking": 0.3,
    "foxing": 0.25,
    "water_stain": 0.15,
    "scratches": 0.4,
    "dust": 0.4,
    "cracks": 0.3,
    "tears": 0.15,
}
# An inpainter that sees under its holes (``sees_under``) learns on damage that lies in its holes,
# cracks in relief among it (the picture intact beneath), over pictures that have thin lines of
# their own (lattices, lettering, outlines: a keep head taught without outlines let the real soft
# cracks' look erase a boy's spectacle rims), and on the holes a detector draws there, false ones
# included.
UNDER_TONE = INPAINT_TONE | {"lattice": 0.15, "lettering": 0.15, "outlines": 0.3, "glints": 0.2}
# The damaged print scanned (blur, resampling, grain, noise over the damage too): real cracks are
# soft and grainy, and a keep head taught only crisp ones kept the real ones as picture (v11's
# trial: ghost cracks left across the real cracked portrait of a boy).
UNDER_HOLES = INPAINT_HOLES | {
    "relief": 0.3,
    "scan_gaussian_blur": 0.3,
    "scan_resample": 0.2,
    "scan_gaussian_noise": 0.2,
    "scan_film_grain": 0.3,
}
# keep_weight's picture: the pixels of a hole that the damage changed by less than this in every
# channel (the grown rim beside a crack, a decoy, a detector's false mark), where giving back what
# is under the hole is all but right.
KEPT = 0.05
# The denoise stage's mixture: what is left once damage is inpainted (no damage, no tone).
DENOISE_PROBABILITIES = {
    "gaussian_blur": 0.3,
    "motion_blur": 0.03,
    "resample": 0.2,
    "gaussian_noise": 0.4,
    "poisson_noise": 0.2,
    "speckle_noise": 0.1,
    "film_grain": 0.5,
    "jpeg": 0.4,
}
# The share of the denoise stage's crops left as they are (the target its own input).
DENOISE_UNTOUCHED = 0.35


@dataclass
class StageConfig:
    stage: str = "detect"  # detect | inpaint | denoise | upscale
    architecture: str = "damage_detector"
    arch_config: dict[str, Any] = field(default_factory=dict)
    steps: int = 8000
    batch: int = 8
    crop: int = 128  # upscale: the large (target) crop; the model sees crop / scale
    lr: float = 1e-3  # cosine decay to a tenth of it over the run
    clip_grad: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    val_every: int = 1000
    val_crops: int = 4  # per held-out image
    val_crop: int = 192
    # detect: the damage and look of old prints (DETECT_PROBABILITIES); denoise: the noise and blur
    # (DENOISE_PROBABILITIES); None: the stage's own
    degradation: dict[str, float] | None = None
    holes: dict[str, float] = field(default_factory=lambda: dict(INPAINT_HOLES))
    # detect (0.2), denoise (DENOISE_UNTOUCHED): share of crops without any effect; None: the stage's own
    untouched: float | None = None
    focus: float = 0.0  # detect, inpaint: share of crops centred on hard negatives (focus_points)
    visible: float = 0.03  # detect: damage that changed no channel by more than this is not marked
    grow: int = 2  # inpaint: holes are grown as the pipeline grows the detector's mask
    # inpaint: each picture's holes grown by 0 to ``grow`` pixels, drawn per picture. A keep head
    # taught on holes always grown learns that a hole's edge is intact picture and keeps it: at grow
    # 0, v16's kept the edges of the cracks it should have filled (damaged pixels on a hole's edge
    # at 0.137 mean squared error, inside it 0.021; in the damage +5.50 dB over the input, the blind
    # fill +10.59). Varied, a hole's edge may be crack or picture, and the head must tell them apart
    # by their look.
    vary_grow: bool = False
    tone: dict[str, float] = field(default_factory=lambda: dict(INPAINT_TONE))  # inpaint: the pictures' look
    detector: str = ""  # inpaint (sees_under): a checkpoint whose detector's holes are filled too
    max_width: int = 0  # inpaint (detector): only its marks narrower than this, as the pipeline fills
    decoys: float = 0.5  # inpaint (sees_under): share of pictures with holes over undamaged picture too
    hole_weight: float = 6.0  # inpaint: extra L1 inside the holes
    # inpaint (sees_under): extra L1 where the holes cover picture the damage left (kept_holes). The
    # hole L1 alone teaches a cautious head: keeping damage costs its contrast, filling intact
    # picture only the fill's error, so in doubt it fills, and v16 filled the grown rims beside
    # cracks at 25.7 dB where the scan was 38.5 (4.5% of the undamaged pixels, near a quarter of their error).
    # Weight 4 over v16's marks (1500 steps) traded: +1.1 dB on undamaged pixels, -1.0 dB in the damage.
    keep_weight: float = 0.0
    ssim_weight: float = 0.2
    augment: bool = True
    zoom: float = 2.0  # detect, denoise, inpaint (augment): crops zoom out up to this many times
    workers: int = 1  # processes building batches (0: in the training process)
    scale: int = 2  # upscale: the enlargement
    enlarge: dict[str, Any] = field(default_factory=dict)  # upscale: EnlargeDegradation's fields
    adv_weight: float = 0.0  # upscale: the adversarial loss's weight after warm-up (0: none)
    warmup_steps: int = 0  # upscale: steps on L1 + SSIM alone before the discriminator joins
    discriminator: str = "patchgan"
    disc_config: dict[str, Any] = field(default_factory=dict)

    def change_mixture(self, probabilities: dict[str, float]) -> None:
        """Change effects' probabilities in the stage's mixture (detect, denoise: ``degradation``;
        inpaint: ``holes``); an effect the degradation model lacks is refused (ValueError), as is the upscale
        stage (its small copies are made by ``enlarge``)."""
        if self.stage == "upscale":
            raise ValueError(
                "probabilities are for the detect, inpaint and denoise stages (upscale: its preset)"
            )
        mixture = "holes" if self.stage == "inpaint" else "degradation"
        changed = getattr(self, mixture) | {k: float(v) for k, v in probabilities.items()}
        DegradationConfig(changed)  # refuses an unknown effect
        setattr(self, mixture, changed)

    @property
    def sees_under(self) -> bool:
        """inpaint: the inpainter looks under its holes (its keep head is what trains)."""
        return self.stage == "inpaint" and bool(self.arch_config.get("sees_under"))

    def __post_init__(self) -> None:
        if self.stage not in ("detect", "inpaint", "denoise", "upscale"):
            raise ValueError(f"stage must be detect, inpaint, denoise or upscale, not {self.stage!r}")
        denoise = self.stage == "denoise"
        if self.degradation is None:
            self.degradation = dict(DENOISE_PROBABILITIES if denoise else DETECT_PROBABILITIES)
        if self.untouched is None:
            self.untouched = DENOISE_UNTOUCHED if denoise else 0.2
        if self.zoom < 1.0:
            raise ValueError(f"zoom is how far crops zoom out, at least 1, not {self.zoom!r}")
        if self.stage == "upscale" and self.crop % self.scale:
            raise ValueError(f"the crop ({self.crop}) must be a multiple of the scale ({self.scale})")

    def small(self) -> EnlargeDegradation:
        """upscale: how the small inputs are made."""
        return EnlargeDegradation(**({"scale": self.scale} | self.enlarge))


def inpaint_batch(
    images: list[np.ndarray],
    seed: int,
    batch: int,
    size: int,
    tone: DegradationConfig,
    holes: DegradationConfig,
    grow: int,
    augment: bool,
    step: int,
    under: bool = False,
    focus: Focus | None = None,
    decoys: float = 0.0,
    zoom: float = 2.0,
    vary_grow: bool = False,
) -> Degraded:
    """Pictures (clean crops through a light tone mixture, ``clean``) and damage-shaped holes in
    them, grown by ``grow`` pixels. ``degraded`` is the picture itself (a blind inpainter sees it
    only outside the holes), or with ``under`` the picture with the damage drawn in it. ``focus``:
    a share of the crops centred on hard negatives (where a detector marks clean photographs).
    ``decoys`` (with ``under``): that share of the pictures also gets a second draw of holes with
    nothing drawn in them, picture to be kept, as under a detector's false marks: without them
    nearly every hole holds damage, and an inpainter learns to ignore what is under its holes.
    ``vary_grow``: each picture's holes grown by its own 0 to ``grow`` pixels (:func:`grows`)."""
    rng = np.random.default_rng([seed, step])
    picture = degrade(random_crops(images, batch, size, rng, augment, focus, zoom), rng, tone).degraded
    damaged = degrade(picture, rng, holes)
    mask = damaged.mask
    if under and decoys > 0:
        decoy = degrade(picture, rng, holes).mask  # the shapes only
        chosen = torch.from_numpy(rng.random(batch) < decoys).to(mask.dtype).view(-1, 1, 1, 1)
        mask = torch.maximum(mask, decoy * chosen)
    mask = grow_each(mask, grows(seed, step, batch, grow, vary_grow))
    return Degraded(damaged.degraded if under else picture, picture, mask, damaged.params)


def grows(seed: int, step: int, batch: int, grow: int, vary: bool) -> list[int]:
    """How far each picture's holes grow at ``step``: ``grow``, or with ``vary`` 0 to ``grow``
    drawn per picture (its own stream, so that the trainer draws a detector's holes alike)."""
    if not vary:
        return [grow] * batch
    return np.random.default_rng([seed, step, 2]).integers(0, grow + 1, batch).tolist()


def grow_each(mask: torch.Tensor, by: list[int]) -> torch.Tensor:
    """Each picture's mask grown by its own number of pixels (:func:`grow_by`)."""
    if len(set(by)) == 1:
        return grow_by(mask, by[0])
    return torch.cat([grow_by(m[None], g) for m, g in zip(mask, by, strict=True)])


def kept_holes(degraded: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The holes' pixels whose picture the damage left (no channel changed by KEPT or more)."""
    return mask * ((degraded - clean).abs().amax(dim=1, keepdim=True) < KEPT).to(mask.dtype)


def enlarge_batch(
    images: list[np.ndarray],
    seed: int,
    batch: int,
    size: int,
    config: EnlargeDegradation,
    augment: bool,
    step: int,
) -> Degraded:
    """Clean ``size``-pixel crops (the targets) and their small copies (``degraded``); no mask."""
    rng = np.random.default_rng([seed, step])
    large = random_crops(images, batch, size, rng, augment)
    small, plans = make_small(large, rng, config)
    return Degraded(small, large, torch.zeros(batch, 1, 1, 1), plans)


def batch_maker(
    c: StageConfig,
    images: list[np.ndarray],
    size: int | None = None,
    validation: bool = False,
    focus: Focus | None = None,
) -> Callable[[int], Degraded]:
    size = size or c.crop
    augment = c.augment and not validation
    if c.stage == "upscale":
        return functools.partial(enlarge_batch, images, c.seed, c.batch, size, c.small(), augment)
    if c.stage in ("detect", "denoise"):
        config = DegradationConfig(dict(c.degradation), untouched=0.0 if validation else c.untouched)
        return functools.partial(
            step_batch,
            images,
            c.seed,
            c.batch,
            size,
            config,
            augment,
            visible=c.visible,
            focus=focus,
            zoom=c.zoom,
        )
    return functools.partial(
        inpaint_batch,
        images,
        c.seed,
        c.batch,
        size,
        DegradationConfig(dict(c.tone)),
        DegradationConfig(dict(c.holes)),
        c.grow,
        augment,
        under=c.sees_under,
        focus=focus,
        decoys=c.decoys,
        zoom=c.zoom,
        vary_grow=c.vary_grow,
    )


class StageTrainer:
    def __init__(
        self,
        config: StageConfig,
        train_images: list[np.ndarray],
        val_images: list[np.ndarray],
        device: str = "cpu",
        log: Callable[[str], None] = print,
        focus_points: list[np.ndarray] | None = None,
    ):
        torch.manual_seed(config.seed)
        self.config, self.device, self.log = config, torch.device(device), log
        self.train_images, self.val_images = train_images, val_images
        if config.focus > 0 and focus_points is None:
            raise ValueError("a focus share needs focus points (hard_negatives)")
        self.focus = Focus(focus_points, config.focus) if config.focus > 0 else None
        self.net = create_model(config.architecture, **config.arch_config)
        if hasattr(self.net, "init_weights"):  # an architecture's own start for training from scratch
            self.net.init_weights()
        self.net = self.net.to(self.device)
        if config.sees_under:
            for name, p in self.net.named_parameters():  # only the keep head learns; the fill is kept
                p.requires_grad_(name.startswith("keep."))
        self.ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        trainable = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trainable, lr=config.lr, betas=(0.9, 0.99), weight_decay=0)
        self.d = self.opt_d = None
        if config.stage == "upscale" and config.adv_weight > 0:
            self.d = create_model(config.discriminator, **config.disc_config).to(self.device)
            self.opt_d = torch.optim.AdamW(
                self.d.parameters(), lr=config.lr, betas=(0.9, 0.99), weight_decay=0
            )
        self.amp = self.device.type == "cuda"
        self.detector = None  # inpaint: the detector whose holes are filled too
        if config.stage == "inpaint" and config.detector:
            detector, _ = stage_of(Path(config.detector), "detect")
            self.detector = detector.to(self.device).eval().requires_grad_(False)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.sessions: list[dict[str, Any]] = []

    def init_from(self, model: torch.nn.Module) -> list[str]:
        """Start the network (and its EMA) from another checkpoint's weights: fine-tuning. An
        inpainter that sees under its holes may start from a blind one: its keep head, which the
        other lacks, starts as built; returns the names of such parts."""
        state = model.state_dict()
        fresh = sorted(
            {k.split(".")[0] for k in self.net.state_dict() if k not in state and k.startswith("keep.")}
        )
        if fresh:
            own = self.net.state_dict()
            state = state | {k: v for k, v in own.items() if k.split(".")[0] in fresh}
        self.net.load_state_dict(state, strict=True)
        self.ema.load_state_dict(state, strict=True)
        return fresh

    def loss(
        self, net: torch.nn.Module, batch: Degraded
    ) -> tuple[torch.Tensor, dict[str, float], tuple[torch.Tensor, torch.Tensor] | None]:
        """The generator's loss on a batch, its parts (for the log), and for an enlarger what it
        made and the target (on the device), for the discriminator's step."""
        c = self.config
        x, y, m = (t.to(self.device, non_blocking=True) for t in (batch.degraded, batch.clean, batch.mask))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            if c.stage == "detect":
                loss = losses.mask_loss(net(x), m)
                return loss, {"loss": loss.item()}, None
            if c.stage == "inpaint":
                filled = net(x, m)
                loss = losses.reconstruction(filled, y, c.ssim_weight, m, c.hole_weight)
                if c.keep_weight and c.sees_under:
                    loss = loss + c.keep_weight * losses.region_l1(filled, y, kept_holes(x, y, m))
                return loss, {"loss": loss.item()}, None
            if c.stage == "denoise":
                loss = losses.reconstruction(_picture(net(x)), y, c.ssim_weight)
                return loss, {"loss": loss.item()}, None
            large = net(x)
            loss = rec = losses.reconstruction(large, y, c.ssim_weight)
            parts = {"loss": rec.item()}
            if self.adversarial:
                adv = losses.g_hinge(self.d(large).float())
                loss = rec + c.adv_weight * adv
                parts["g_adv"] = adv.item()
            return loss, parts, (large.detach(), y)

    @torch.no_grad()
    def with_detected(self, batch: Degraded, step: int) -> Degraded:
        """inpaint with a detector: the holes are the damage's and the ones the detector draws over
        the damaged picture (as the pipeline fills them), so that the inpainter meets the false
        ones it will meet in use, and learns to keep the picture there. ``step``: the batch's, whose
        pictures' grows the detector's holes take too."""
        if self.detector is None:
            return batch
        c, x = self.config, batch.degraded.to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            prob = detect_probability(self.detector, x)
        drawn = fill_holes(prob, grow=0, max_width=c.max_width)
        drawn = grow_each(drawn, grows(c.seed, step, len(x), c.grow, c.vary_grow))
        return dataclasses.replace(batch, mask=torch.maximum(batch.mask, drawn.to(batch.mask.device)))

    @property
    def adversarial(self) -> bool:
        return self.d is not None and self.step >= self.config.warmup_steps

    def train_step(self, batch: Degraded) -> dict[str, float]:
        c = self.config
        lr = c.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * self.step / max(c.steps, 1))))
        for group in (*self.opt.param_groups, *(self.opt_d.param_groups if self.opt_d else ())):
            group["lr"] = lr
        adversarial = self.adversarial
        if adversarial:
            self.d.requires_grad_(False)  # the generator's step does not train the discriminator
        loss, parts, outputs = self.loss(self.net, self.with_detected(batch, self.step))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.clip_grad)
        self.opt.step()
        if adversarial:
            self.d.requires_grad_(True)
            made, real = outputs
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                d_loss = losses.d_hinge(self.d(real).float(), self.d(made).float())
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(self.d.parameters(), c.clip_grad)
            self.opt_d.step()
            parts["d"] = d_loss.item()
        with torch.no_grad():
            decay = min(c.ema_decay, (1 + self.step) / (10 + self.step))
            for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
                e.lerp_(p, 1 - decay)
        self.step += 1
        return parts

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        c = self.config
        make = batch_maker(c, self.val_images, c.val_crop, validation=True)
        batches = [self.with_detected(make(10**9 + i), 10**9 + i) for i in range(c.val_crops)]
        return evaluate_stage(self.ema, c.stage, batches, self.device)

    def save_state(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "step": self.step,
            "net": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            **({"d": self.d.state_dict(), "opt_d": self.opt_d.state_dict()} if self.d is not None else {}),
            "history": self.history,
            "sessions": self.sessions,
        }
        tmp = directory / (STATE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(directory / STATE)

    def load_state(self, directory: Path) -> bool:
        path = directory / STATE
        if not path.exists():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        for name in ("net", "ema", "opt") + (("d", "opt_d") if self.d is not None else ()):
            getattr(self, name).load_state_dict(state[name])
        self.step, self.history, self.sessions = state["step"], state["history"], state["sessions"]
        return True

    def run(
        self,
        directory: Path,
        resume: bool = True,
        state_every: int = 250,
        session: dict | None = None,
        until: int | None = None,
        deadline: float | None = None,
    ) -> None:
        """Train to ``config.steps`` (or stop at ``until``, or once ``time.monotonic()`` passes
        ``deadline``, as on a lent GPU's fixed budget: the schedule stays the full run's)."""
        c = self.config
        entry, begun = begin_session(self, directory, resume, session)
        started, running = time.perf_counter(), []
        for batch in batch_loader(
            batch_maker(c, self.train_images, focus=self.focus),
            self.step,
            min(until or c.steps, c.steps),
            c.workers,
        ):
            running.append(self.train_step(batch))
            if self.step % 50 == 0 or self.step == c.steps:
                means = {k: float(np.mean([r[k] for r in running if k in r])) for k in running[-1]}
                self.log(
                    f"step {self.step}/{c.steps} "
                    + " ".join(f"{k}={v:.4f}" for k, v in means.items())
                    + f" ({len(running) / (time.perf_counter() - started):.2f} steps/s)"
                )
                self.history.append({"step": self.step} | means)
                running, started = [], time.perf_counter()
            if self.step % c.val_every == 0 and self.step < c.steps:
                self.log("validation " + " ".join(f"{k}={v:.4f}" for k, v in self.validate().items()))
            if self.step % state_every == 0:
                entry.update(to_step=self.step, wall_seconds=round(time.monotonic() - begun))
                self.save_state(directory)
            if deadline is not None and time.monotonic() > deadline:
                self.log(f"stopped at step {self.step} of {c.steps}: out of time")
                break
        entry.update(to_step=self.step, wall_seconds=round(time.monotonic() - begun))
        self.save_state(directory)


@torch.inference_mode()
def hard_negatives(
    detector: torch.nn.Module,
    images: list[np.ndarray],
    threshold: float = 0.5,
    limit: int = 2000,
    seed: int = 0,
) -> list[np.ndarray]:
    """Where ``detector`` marks damage on clean photographs (probability above ``threshold``): for
    each image, a seeded sample of at most ``limit`` (row, column) points, for
    :class:`restoration.data.Focus`. On a clean photograph every mark is a false one: the thin
    bright lines, glints and edges the next detector must learn to leave alone."""
    detector.eval()
    rng = np.random.default_rng([seed, 31])
    out = []
    for img in images:
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0
        prob = detect_probability(detector, x)[0, 0]
        points = torch.nonzero(prob > threshold).numpy()
        if len(points) > limit:
            points = points[np.sort(rng.choice(len(points), limit, replace=False))]
        out.append(points.astype(np.int32))
    return out


@torch.no_grad()
def evaluate_stage(
    net: torch.nn.Module, stage: str, batches: list[Degraded], device: torch.device
) -> dict[str, float]:
    """detect: mask F1 at 0.5; inpaint: PSNR inside the holes, and over the whole crops; denoise:
    PSNR and SSIM of its outputs, and the inputs' PSNR; upscale: PSNR and SSIM of the enlargements,
    and of bicubic enlargement for comparison."""
    net.eval()
    if stage == "denoise":
        made = torch.cat([_picture(net(b.degraded.to(device))).float().clamp(0, 1).cpu() for b in batches])
        clean, given = torch.cat([b.clean for b in batches]), torch.cat([b.degraded for b in batches])
        return {
            "psnr": psnr(made, clean).mean().item(),
            "ssim": ssim(made, clean).mean().item(),
            "input_psnr": psnr(given, clean).mean().item(),
        }
    if stage == "upscale":
        made = torch.cat([net(b.degraded.to(device)).float().clamp(0, 1).cpu() for b in batches])
        clean = torch.cat([b.clean for b in batches])
        size = clean.shape[-2:]
        bicubic = torch.cat(
            [F.interpolate(b.degraded, size=size, mode="bicubic").clamp(0, 1) for b in batches]
        )
        return {
            "psnr": psnr(made, clean).mean().item(),
            "ssim": ssim(made, clean).mean().item(),
            "bicubic_psnr": psnr(bicubic, clean).mean().item(),
        }
    if stage == "detect":
        prob = torch.cat([torch.sigmoid(net(b.degraded.to(device)).float()).cpu() for b in batches])
        return {"mask_f1": mask_f1(prob, torch.cat([b.mask for b in batches])).item()}
    filled = torch.cat([net(b.degraded.to(device), b.mask.to(device)).float().cpu() for b in batches])
    clean, holes = torch.cat([b.clean for b in batches]), torch.cat([b.mask for b in batches])
    metrics = {"hole_psnr": region_psnr(filled, clean, holes), "psnr": psnr(filled, clean).mean().item()}
    if getattr(net, "keep", None) is not None:  # where it should give back what is under its holes
        kept = kept_holes(torch.cat([b.degraded for b in batches]), clean, holes)
        metrics["kept_psnr"] = region_psnr(filled, clean, kept)
    return metrics


def _picture(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """A denoiser's picture: a restorer such as unet_restorer also returns a damage mask's logits."""
    return out[0] if isinstance(out, tuple) else out


# Configuration fields only one stage reads: a card lists its own stage's, not the others' defaults.
_STAGE_FIELDS = {
    "detect": {"degradation", "untouched", "visible", "focus"},
    "denoise": {"degradation", "untouched"},
    "inpaint": {
        "holes",
        "grow",
        "vary_grow",
        "hole_weight",
        "keep_weight",
        "tone",
        "detector",
        "max_width",
        "decoys",
        "focus",
    },
    "upscale": {"scale", "enlarge", "adv_weight", "warmup_steps", "discriminator", "disc_config"},
}


def _own_fields(c: StageConfig) -> dict[str, Any]:
    others = (
        set().union(*(f for stage, f in _STAGE_FIELDS.items() if stage != c.stage)) - _STAGE_FIELDS[c.stage]
    )
    return {k: v for k, v in asdict(c).items() if k not in others}


def export(trainer: StageTrainer, directory: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Save the EMA weights of one stage as a checkpoint with its card."""
    c = trainer.config
    card = card | {
        "architecture": c.architecture,
        "config": c.arch_config,
        "task": "upscale" if c.stage == "upscale" else f"restore-{c.stage}",
        "training": _own_fields(c) | {"steps_done": trainer.step, "device": str(trainer.device)},
        "history": trainer.history[-20:],
        "sessions": trainer.sessions,
    }
    if c.stage == "upscale":  # the small inputs' recipe, field by field, and its digest
        card["scale"] = c.scale
        card["degradation"] = asdict(c.small()) | {"digest": c.small().digest()}
    return save_checkpoint(trainer.ema, directory, card)


def stage_of(checkpoint: Path, stage: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The ``stage`` network of a checkpoint (a pipeline's stage, or a stage's own checkpoint), and
    the checkpoint's card (its digests verified by loading). A pipeline behind the tone stage (the
    shipped restore-unet) is looked into: its stages are its restorer's."""
    from restoration.checkpoints import load_checkpoint
    from restoration.stages import pipeline_stages

    model, card = load_checkpoint(checkpoint)
    model, _ = pipeline_stages(model, card)
    part = getattr(model, stage, None)  # an enlarger's ``upscale`` is its factor, not a stage
    return (part if isinstance(part, torch.nn.Module) else model), card


def init_stage(trainer: StageTrainer, checkpoint: Path, stage: str) -> dict[str, str]:
    """Start ``trainer``'s network from ``checkpoint``'s ``stage``; what the card records of it."""
    model, card = stage_of(checkpoint, stage)
    try:
        fresh = trainer.init_from(model)
    except RuntimeError as e:
        raise ValueError(
            f"init from {checkpoint}: its {stage} network does not fit {trainer.config.architecture} "
            f"{trainer.config.arch_config}: {str(e).splitlines()[0]}"
        ) from None
    return {"from": str(checkpoint), "weights_sha256": card["weights_sha256"]} | (
        {"new_parts": fresh} if fresh else {}
    )


def hard_negatives_from(
    checkpoint: Path, images: list[np.ndarray], seed: int
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Where ``checkpoint``'s detector marks the clean training images (:func:`hard_negatives`),
    and what the card records of it."""
    detector, card = stage_of(checkpoint, "detect")
    points = hard_negatives(detector, images, seed=seed)
    return points, {
        "from": str(checkpoint),
        "weights_sha256": card["weights_sha256"],
        "points": int(sum(len(p) for p in points)),
        "images_marked": int(sum(1 for p in points if len(p))),
    }
