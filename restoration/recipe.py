"""The training recipe of the restorer: what it learns to undo and with which losses. Kept apart
from ``training`` (which needs torch) so the CLI can show the defaults without loading torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What the restorer learns to undo: damage, noise, grain, blur and compression. Global tone is
# left out: a model that sees one tile cannot tell a faded print from a misty scene or a sepia
# print from a brown one, and trained on fading it learnt a contrast stretch that harmed clean
# scans (29 dB on undamaged inputs). Tone is the curator's call (levels, period styles).
RESTORE_PROBABILITIES = {
    "gaussian_blur": 0.4,
    "motion_blur": 0.05,
    "resample": 0.25,
    "gaussian_noise": 0.4,
    "poisson_noise": 0.2,
    "speckle_noise": 0.1,
    "film_grain": 0.5,
    "scratches": 0.7,
    "dust": 0.7,
    "cracks": 0.35,
    "tears": 0.15,
    "jpeg": 0.4,
}


@dataclass
class TrainConfig:
    architecture: str = "unet_restorer"
    arch_config: dict[str, Any] = field(default_factory=dict)
    discriminator: str = "patchgan"
    disc_config: dict[str, Any] = field(default_factory=lambda: {"ndf": 32, "n_layers": 3})
    steps: int = 4000
    warmup_steps: int = 1200  # generator alone, reconstruction + mask losses
    batch: int = 8
    crop: int = 96
    lr: float = 1e-3  # cosine decay to a tenth of it over the run
    clip_grad: float = 1.0  # gradient-norm clipping, generator and discriminator
    adv_weight: float = 0.002
    mask_weight: float = 0.3
    ssim_weight: float = 0.2
    hole_weight: float = 0.0  # extra L1 weight inside the damage mask (inpainting)
    ema_decay: float = 0.999
    seed: int = 0
    val_every: int = 500
    val_crops: int = 4  # per held-out image
    val_crop: int = 192
    degradation: dict[str, float] = field(default_factory=lambda: dict(RESTORE_PROBABILITIES))
    untouched: float = 0.1  # share of training crops left clean, so the model learns to leave them
    augment: bool = False  # zoom-out and channel shuffles of the crops (data.random_crops); v1-v4 ran without
    workers: int = 1  # processes building batches (0: in the training process); the batches are the same


# Each stage's default architecture (the staged restorer's three, and the enlarger).
STAGE_ARCHITECTURES = {
    "detect": "damage_detector",
    "inpaint": "gated_inpainter",
    "denoise": "unet_restorer",
    "upscale": "srvgg_compact",
}


# -- enlargers ---------------------------------------------------------------------------------

# The architectures that enlarge, and the keyword argument that sets each one's scale (both
# default to 4, as Real-ESRGAN's do).
ENLARGERS = {"srvgg_compact": "upscale", "rrdbnet": "scale"}
DEFAULT_SCALE = 4


def scale_of(architecture: str, config: dict[str, Any]) -> int:
    """How many times an enlarger of ``architecture`` built with ``config`` enlarges (1: not an enlarger)."""
    key = ENLARGERS.get(architecture)
    return int(config.get(key, DEFAULT_SCALE)) if key else 1


def enlarger_config(architecture: str, config: dict[str, Any], scale: int) -> dict[str, Any]:
    """``config`` with the enlarger's scale argument set to ``scale``; ValueError where the
    architecture does not enlarge, or the config names another scale."""
    if architecture not in ENLARGERS:
        raise ValueError(f"an enlarger is one of {', '.join(ENLARGERS)}, not {architecture!r}")
    config, key = dict(config), ENLARGERS[architecture]
    if config.setdefault(key, scale) != scale:
        raise ValueError(f"--arch-config: {architecture}'s {key} is {config[key]}, not the scale {scale}")
    return config


# -- restoration parameters (the tone stage and the strength) -----------------------------------

TONE_MODES = ("auto", "neutral", "off")
# The restore pipeline's detector views (restoration.archs.pipeline.detect_views): the picture as
# it is, mirrored left-right, upside down, and both; with 8, the same four of its transpose. Their
# logits, turned back and averaged, are the pipeline's: fewer lone false marks, the same cracks.
# 3 (the first three) costs a quarter less than 4, where a padded detector's larger input would
# take the pipeline over budget. Here, not beside the pipeline, so the CLI offers them without torch.
VIEWS = (1, 2, 3, 4, 8)
TONED = "toned_restorer"  # the architecture that carries the tone stage (restoration.archs.toned)


def check_tone(mode: str) -> str:
    """``mode`` if it is a tone mode; ValueError (one line) otherwise."""
    if mode not in TONE_MODES:
        raise ValueError(f"tone must be one of {', '.join(TONE_MODES)}, not {mode!r}")
    return mode


def has_tone_stage(architecture: str) -> bool:
    return architecture.startswith(TONED)


def restore_params(architecture: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """A restorer's recipe parameters, checked and typed: ``tone`` (auto | neutral | off; auto by
    default) where the model has the tone stage, and ``strength`` (0..1, the restoration's blend
    over its input; 1 by default). A model without the stage records ``strength`` only when it is
    not 1, so the recipes of models from before the stage keep their hashes. ValueError (one
    line) for anything else."""
    params = dict(params or {})
    unknown = set(params) - {"tone", "strength"}
    if unknown:
        raise ValueError(f"a restorer has no parameter(s) {sorted(unknown)}; it has: tone, strength")
    try:
        strength = float(params.get("strength", 1.0))
    except (TypeError, ValueError):
        raise ValueError(f"strength must be a number between 0 and 1, not {params['strength']!r}") from None
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, not {params['strength']!r}")
    if not has_tone_stage(architecture):
        if params.get("tone", "off") != "off":
            raise ValueError(
                f"this model ({architecture}) has no tone stage: it takes no tone (a restore version "
                "with the stage does)"
            )
        return {} if strength == 1.0 else {"strength": strength}
    return {"tone": check_tone(params.get("tone", "auto")), "strength": strength}
