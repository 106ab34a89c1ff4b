"""Training the tone stage's learned estimator (``archs.tone_net``) on clean photographs aged by
the project's own fading, yellowing, casts and sepia toning, with the usual damage on top; a
quarter of the pictures are left clean, so that it learns to leave a good print alone.

Each training picture is a random region (35-100% of a photograph, any aspect) scaled to a
square, sometimes made monochrome. The loss is what the stage is for: the picture corrected
with the ``neutral`` estimate against the clean one (L1), plus the ``auto`` estimate's luminance
against the clean luminance (auto keeps hue, so only tone is asked of it). Resumable: the state
(network, optimiser, schedule, random generator, step) is saved every ``save_every`` steps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from restoration import tone_stage
from restoration.archs.tone_net import ToneNet
from restoration.degrade.pipeline import DegradationConfig, degrade
from restoration.degrade.tone import luminance
from restoration.styles.tone import preview

AGING = {
    "fading": 0.6,
    "yellowing": 0.5,
    "sepia": 0.3,
    "vignette": 0.15,
    "film_grain": 0.3,
    "gaussian_noise": 0.15,
    "gaussian_blur": 0.3,
    "scratches": 0.3,
    "dust": 0.3,
    "jpeg": 0.2,
}


@dataclass
class ToneTrainConfig:
    steps: int = 2500
    batch: int = 24
    size: int = 160  # side of the square each training picture is scaled to
    lr: float = 2e-3  # cosine decay to a tenth of it
    seed: int = 0
    untouched: float = 0.25  # share of pictures left clean
    mono: float = 0.15  # share made monochrome (before aging: toned prints are monochrome)
    width: int = 32
    hidden: int = 128
    degradation: dict[str, float] = field(default_factory=lambda: dict(AGING))
    save_every: int = 250


def pictures(images: dict[str, np.ndarray], side: int = 384) -> list[torch.Tensor]:
    return [preview(img, side).clamp(0, 1) for img in images.values()]


def sample(
    photos: list[torch.Tensor], rng: np.random.Generator, config: ToneTrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of (aged, clean) training pictures."""
    out = []
    for _ in range(config.batch):
        x = photos[int(rng.integers(len(photos)))]
        h, w = x.shape[-2:]
        area = rng.uniform(0.35, 1.0)
        ch = min(h, max(32, int(h * np.sqrt(area) * rng.uniform(0.85, 1.15))))
        cw = min(w, max(32, int(w * np.sqrt(area) * rng.uniform(0.85, 1.15))))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        region = x[..., y0 : y0 + ch, x0 : x0 + cw]
        size = (config.size, config.size)
        region = F.interpolate(region, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(
            0, 1
        )
        if rng.random() < 0.5:
            region = region.flip(-1)
        if rng.random() < config.mono:
            region = luminance(region).expand(-1, 3, -1, -1).contiguous()
        out.append(region)
    clean = torch.cat(out)
    aging = DegradationConfig(config.degradation, untouched=config.untouched)
    return degrade(clean, rng, aging).degraded, clean


def batch_apply(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    return torch.cat([tone_stage.apply(x[i : i + 1], params[i]) for i in range(x.shape[0])])


def loss(net: ToneNet, aged: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    neutral, auto = net(aged)
    fixed = batch_apply(aged, neutral)
    toned = batch_apply(aged, auto)
    return (fixed - clean).abs().mean() + (luminance(toned) - luminance(clean)).abs().mean()


def train(
    images: dict[str, np.ndarray],
    config: ToneTrainConfig,
    state_path: Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[ToneNet, list[dict]]:
    """Train (or resume from ``state_path``) and return the network and its loss history."""
    torch.manual_seed(config.seed)
    net = ToneNet(config.width, config.hidden)
    opt = torch.optim.Adam(net.parameters(), config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps, config.lr / 10)
    rng, step, history = np.random.default_rng(config.seed), 0, []
    if state_path is not None and state_path.exists():
        state = torch.load(state_path, weights_only=True)
        if state["config"] != asdict(config):
            raise ValueError(f"{state_path} was trained with another configuration; start a new state")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        rng.bit_generator.state, step, history = state["rng"], state["step"], state["history"]
        log(f"resumed at step {step}")
    photos, start, running = pictures(images), time.time(), []
    while step < config.steps:
        aged, clean = sample(photos, rng, config)
        value = loss(net, aged, clean)
        opt.zero_grad()
        value.backward()
        opt.step()
        sched.step()
        step += 1
        running.append(value.item())
        if step % 50 == 0:
            history.append({"step": step, "loss": float(np.mean(running))})
            log(f"step {step}/{config.steps} loss {history[-1]['loss']:.4f} ({time.time() - start:.0f} s)")
            running = []
        if state_path is not None and (step % config.save_every == 0 or step == config.steps):
            state = {
                "net": net.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "rng": rng.bit_generator.state,
                "step": step,
                "history": history,
                "config": asdict(config),
            }
            torch.save(state, state_path.with_suffix(".tmp"))
            state_path.with_suffix(".tmp").replace(state_path)
    return net.eval(), history
