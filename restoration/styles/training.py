"""Training the multi-style network from exemplar sets, one style per set.

Losses (all against statistics of the exemplars, never against paired images: the sets show
a look, not the same scenes):
- style: Gram matrices of multi-scale random-weight features (``features``), per style the mean
  over many exemplar crops, compared relatively at every scale;
- colour: 1-D Wasserstein distance of each channel's values to the exemplars' (sorted samples),
  the distance of colour means and covariances, and (``tint_weight``) how far each pixel's chroma
  lies outside the exemplars' chroma at its tone (``features.tint_distance``);
- content: SSIM between output and input luminance, so people and places stay recognisable;
- adversarial: a PatchGAN conditioned on the style (one-hot maps beside the image), hinge loss,
  from ``adv_start`` on.
With ``set_statistics`` a batch holds one style, and the style and colour statistics of the batch
as a whole are compared with the exemplars' (its mean Gram matrices, its pooled histogram, its
mean colour moments). Compared crop by crop instead, each crop pays for differing from the
*average* exemplar crop, so the spread between crops costs too, and a rendering that pulls every
crop towards the average (lifted shadows, dimmed highlights) scores better than the process that
made the exemplars. The network also keeps each exemplar set's tonal distribution
(``StyleNet.tones``, saved with the weights) for printing to it at inference (``styles.tone``).
Seeded (the batch of a step is a function of seed and step) and resumable.
"""

from __future__ import annotations

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
from restoration.checkpoints import save_checkpoint
from restoration.data import random_crops
from restoration.degrade.tone import luminance
from restoration.factory import create_model
from restoration.metrics import ssim
from restoration.styles.evaluate import StyleStats, eval_extractor, style_report
from restoration.styles.features import (
    gram_distance,
    grams,
    histogram_distance,
    make_extractor,
    tint_curve,
    tint_distance,
)
from restoration.styles.tone import collection_tones

STATE = "training-state.pt"


@dataclass
class StyleTrainConfig:
    architecture: str = "style_net"
    arch_config: dict[str, Any] = field(default_factory=dict)  # n_styles comes from the exemplar sets
    discriminator: str = "patchgan"
    disc_config: dict[str, Any] = field(default_factory=lambda: {"ndf": 32, "n_layers": 2})
    features: dict[str, Any] = field(default_factory=lambda: {"kind": "random", "seed": 0})
    steps: int = 2000
    batch: int = 4
    crop: int = 128
    lr: float = 2e-3  # cosine decay to a tenth
    style_weight: float = 1.0
    colour_weight: float = 4.0
    content_weight: float = 1.0
    adv_weight: float = 0.02
    adv_start: int = 400
    target_crops: int = 64  # exemplar crops per style for its statistics
    # Content crops zoomed out and with their colour channels shuffled (data.random_crops): the
    # photographs have few saturated hues, and v1, trained without, rendered a red saucer purple
    # in its monochrome styles. False for v1's config, which ran without.
    augment: bool = False
    # Weight of the tint loss within the colour loss. The channel histograms and colour moments
    # are statistics of whole crops: under them v1, and its run at 3000 steps, left a navy uniform
    # dark purple in a sepia print, a colour the exemplars show at no tone. 0 for v1's config.
    tint_weight: float = 0.0
    # Compare the batch's statistics as a set (one style per batch) instead of each crop's: see
    # the module's docstring. False for v1's and v2's configs, whose outputs compress the tonal
    # range at both ends.
    set_statistics: bool = False
    seed: int = 0
    log_every: int = 50


class StyleTrainer:
    def __init__(
        self,
        config: StyleTrainConfig,
        exemplars: dict[str, list[np.ndarray]],
        content: list[np.ndarray],
        device: str = "cpu",
        log: Callable[[str], None] = print,
    ):
        if not exemplars:
            raise ValueError("no exemplar sets: give at least one style")
        torch.manual_seed(config.seed)
        self.config, self.device, self.log = config, torch.device(device), log
        self.styles, self.exemplars, self.content = list(exemplars), exemplars, content
        n = len(self.styles)
        self.g = create_model(config.architecture, **(config.arch_config | {"n_styles": n})).to(self.device)
        self.d = create_model(config.discriminator, **(config.disc_config | {"in_ch": 3 + n})).to(self.device)
        if hasattr(self.g, "tones"):  # kept on resuming from a state saved before tones existed
            self.g.tones.copy_(torch.stack([collection_tones(exemplars[s]) for s in self.styles]))
        self.features = make_extractor(config.features).to(self.device)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=config.lr, betas=(0.5, 0.99))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=config.lr, betas=(0.5, 0.99))
        rng = np.random.default_rng([config.seed, 7])
        crops = [
            random_crops(exemplars[s], config.target_crops, config.crop, rng).to(self.device)
            for s in self.styles
        ]
        self.targets = [StyleStats.of(self.features, c) for c in crops]
        self.tints = [tint_curve(c) for c in crops]
        # Per style, the mean over exemplar crops of each crop's colour mean and covariance: what
        # one image of the style looks like (pooled moments would add the spread between images).
        self.moments = [
            tuple(torch.stack(m).mean(0) for m in zip(*(colour_moments(x[None]) for x in c), strict=True))
            for c in crops
        ]
        self.step, self.history, self.sessions = 0, [], []

    def _style_maps(self, idx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(idx, len(self.styles)).float()[..., None, None]
        return onehot.expand(-1, -1, *like.shape[-2:])

    def losses(
        self, x: torch.Tensor, idx: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        c = self.config
        out = self.g(x, idx)
        style, colour = self.statistics_losses(out, idx)
        if c.tint_weight:
            tints = [tint_distance(o[None], *self.tints[i]) for o, i in zip(out, idx.tolist(), strict=True)]
            colour = colour + c.tint_weight * torch.cat(tints).mean()
        content = 1 - ssim(luminance(out), luminance(x)).mean()
        total = c.style_weight * style + c.colour_weight * colour + c.content_weight * content
        parts = {"style": style.item(), "colour": colour.item(), "content": content.item()}
        if self.step >= c.adv_start:
            adv = losses.g_hinge(self.d(torch.cat([out, self._style_maps(idx, out)], 1)))
            total = total + c.adv_weight * adv
            parts["g_adv"] = adv.item()
        return total, parts, out

    def statistics_losses(
        self, out: torch.Tensor, idx: torch.Tensor, as_set: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The style (Gram) and colour (histogram and moment) losses of outputs ``out`` of styles
        ``idx``: per crop, or (``as_set``, by default ``set_statistics``; one style) of the batch
        as a set."""
        styles = idx.tolist()
        if self.config.set_statistics if as_set is None else as_set:
            if len(set(styles)) != 1:
                raise ValueError("set statistics need one style per batch")
            i = styles[0]
            style = gram_distance(
                [g.mean(0, keepdim=True) for g in grams(self.features, out)], self.targets[i].grams
            ).mean()
            colour = histogram_distance(
                out.transpose(0, 1).reshape(1, 3, -1), self.targets[i].quantiles
            ).mean()
            return style, colour + moment_distance(out, [self.moments[i]], pooled=True)
        target_grams = [
            torch.cat([self.targets[i].grams[k] for i in styles]) for k in range(len(self.targets[0].grams))
        ]
        style = gram_distance(grams(self.features, out), target_grams).mean()
        colour = histogram_distance(out, torch.stack([self.targets[i].quantiles for i in styles])).mean()
        return style, colour + moment_distance(out, [self.moments[i] for i in styles])

    def train_step(self) -> dict[str, float]:
        c = self.config
        rng = np.random.default_rng([c.seed, self.step])
        x = random_crops(self.content, c.batch, c.crop, rng, c.augment).to(self.device)
        n = len(self.styles)
        idx = torch.from_numpy(
            np.full(c.batch, rng.integers(n)) if c.set_statistics else rng.integers(n, size=c.batch)
        ).to(self.device)
        lr = c.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * self.step / max(c.steps, 1))))
        for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
            group["lr"] = lr
        total, parts, out = self.losses(x, idx)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.g.parameters(), 1.0)
        self.opt_g.step()
        if self.step >= c.adv_start:
            real = torch.cat(
                [random_crops(self.exemplars[self.styles[i]], 1, c.crop, rng) for i in idx.tolist()]
            ).to(self.device)
            maps = self._style_maps(idx, real)
            d_loss = losses.d_hinge(
                self.d(torch.cat([real, maps], 1)), self.d(torch.cat([out.detach(), maps], 1))
            )
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(self.d.parameters(), 1.0)
            self.opt_d.step()
            parts["d"] = d_loss.item()
        self.step += 1
        return parts | {"total": total.item()}

    # -- validation, state --------------------------------------------------------------------

    @torch.no_grad()
    def validate(
        self, images: list[np.ndarray], crop: int = 256, per_image: int = 2
    ) -> dict[str, dict[str, float]]:
        """Per style, on held-out images: distances before/after to the exemplars' statistics,
        measured with an extractor the network never trained against, and luminance SSIM."""
        rng = np.random.default_rng([self.config.seed, 10**9])
        x = torch.cat([random_crops([img], per_image, crop, rng) for img in images]).to(self.device)
        measure = eval_extractor().to(self.device)
        self.g.eval()
        report = {}
        for i, name in enumerate(self.styles):
            target = StyleStats.of(
                measure,
                torch.cat([random_crops(self.exemplars[name], 4, crop, rng) for _ in range(4)]).to(
                    self.device
                ),
            )
            report[name] = style_report(measure, target, x, self.g(x, i).clamp(0, 1))
        self.g.train()
        return report

    def save_state(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "step": self.step,
            "g": self.g.state_dict(),
            "d": self.d.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "history": self.history,
            "sessions": self.sessions,
        }
        torch.save(state, directory / (STATE + ".tmp"))
        (directory / (STATE + ".tmp")).replace(directory / STATE)

    def load_state(self, directory: Path) -> bool:
        if not (directory / STATE).exists():
            return False
        state = torch.load(directory / STATE, map_location=self.device, weights_only=True)
        for name in ("g", "d", "opt_g", "opt_d"):
            getattr(self, name).load_state_dict(state[name])
        self.step, self.history, self.sessions = state["step"], state["history"], state["sessions"]
        return True

    def run(
        self, directory: Path, resume: bool = True, state_every: int = 250, session: dict | None = None
    ) -> None:
        c = self.config
        if resume and self.load_state(directory):
            self.log(f"resumed at step {self.step}")
        entry = (session or {}) | {"from_step": self.step, "to_step": self.step, "wall_seconds": 0}
        self.sessions.append(entry)
        begun, running = time.monotonic(), []
        while self.step < c.steps:
            running.append(self.train_step())
            if self.step % c.log_every == 0 or self.step == c.steps:
                mean = {k: float(np.mean([r.get(k, 0.0) for r in running])) for k in running[-1]}
                self.history.append({"step": self.step, **mean})
                self.log(f"step {self.step}/{c.steps} " + " ".join(f"{k}={v:.4f}" for k, v in mean.items()))
                running = []
            if self.step % state_every == 0 or self.step == c.steps:
                entry.update(to_step=self.step, wall_seconds=round(time.monotonic() - begun))
                self.save_state(directory)


def colour_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (3) and covariance (3x3) of the pixel colours of images [N, 3, H, W], pooled: the
    joint colour the marginal histograms miss (a cyanotype's blues lie on one line in RGB)."""
    flat = x.transpose(0, 1).reshape(3, -1)
    mean = flat.mean(1)
    centred = flat - mean[:, None]
    return mean, centred @ centred.T / flat.shape[1]


def moment_distance(
    out: torch.Tensor, targets: list[tuple[torch.Tensor, torch.Tensor]], pooled: bool = False
) -> torch.Tensor:
    """Mean over images of |mean - target mean|₁/3 + |cov - target cov|₁/9 (covariances are small:
    scaled by 10 to weigh like the means); ``pooled``: of the images' mean moments, one target."""
    moments = [colour_moments(img[None]) for img in out]
    if pooled:
        moments = [tuple(torch.stack(m).mean(0) for m in zip(*moments, strict=True))]
    terms = [
        (mean - mean_t).abs().mean() + 10 * (cov - cov_t).abs().mean()
        for (mean, cov), (mean_t, cov_t) in zip(moments, targets, strict=True)
    ]
    return torch.stack(terms).mean()


def export(trainer: StyleTrainer, directory: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Save the network with its card: architecture, styles (in code order), config, data."""
    c = trainer.config
    card = card | {
        "architecture": c.architecture,
        "config": c.arch_config | {"n_styles": len(trainer.styles)},
        "task": "style",
        "styles": trainer.styles,
        "training": asdict(c) | {"steps_done": trainer.step, "device": str(trainer.device)},
        "history": trainer.history[-20:],
        "sessions": trainer.sessions,
    }
    return save_checkpoint(trainer.g, directory, card)


def preset_exemplars(preset: str, images: list[np.ndarray], strength: float = 1.0) -> list[np.ndarray]:
    """A synthetic exemplar set: ``images`` (uint8 RGB) rendered by a process emulation. Stands
    in for a period collection where none can be had (as here: nothing can be downloaded)."""
    from restoration.styles.presets import get_preset

    p = get_preset(preset)
    out = []
    for img in images:
        x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        y = p.apply(x, strength)[0].permute(1, 2, 0).numpy()
        out.append((y * 255 + 0.5).astype(np.uint8))
    return out
