"""GAN training of the restorer: warm-up on reconstruction and mask losses, then adversarial
training against a PatchGAN; EMA of the generator; AMP on CUDA; seeded and resumable."""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restoration import losses
from restoration.baseline import classical_restore
from restoration.checkpoints import save_checkpoint
from restoration.data import batch_loader, step_batch, training_batch, validation_set
from restoration.degrade import DegradationConfig, Degraded
from restoration.factory import create_model
from restoration.metrics import mask_f1, psnr, ssim
from restoration.recipe import RESTORE_PROBABILITIES, TrainConfig

__all__ = ["RESTORE_PROBABILITIES", "TrainConfig", "Trainer", "evaluate", "export"]

STATE = "training-state.pt"


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        train_images: list[np.ndarray],
        val_images: list[np.ndarray],
        device: str = "cpu",
        log: Callable[[str], None] = print,
    ):
        torch.manual_seed(config.seed)
        self.config, self.device, self.log = config, torch.device(device), log
        self.train_images, self.val_images = train_images, val_images
        self.degradation = DegradationConfig(dict(config.degradation), untouched=config.untouched)
        self.val_degradation = DegradationConfig(dict(config.degradation))
        self.g = create_model(config.architecture, **config.arch_config).to(self.device)
        self.d = create_model(config.discriminator, **config.disc_config).to(self.device)
        self.ema = copy.deepcopy(self.g).eval().requires_grad_(False)
        self.opt_g = torch.optim.AdamW(self.g.parameters(), lr=config.lr, betas=(0.9, 0.99), weight_decay=0)
        self.opt_d = torch.optim.AdamW(self.d.parameters(), lr=config.lr, betas=(0.9, 0.99), weight_decay=0)
        self.amp = self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step = 0
        self.history: list[dict[str, float]] = []
        # How the steps were run: one entry per (resumed) session, e.g. the command and threads.
        self.sessions: list[dict[str, Any]] = []

    # -- one step -----------------------------------------------------------------------------

    def train_step(self, batch: Degraded | None = None) -> dict[str, float]:
        c = self.config
        batch = batch or training_batch(
            self.train_images, self.step, c.seed, c.batch, c.crop, self.degradation, c.augment
        )
        x, y, m = (t.to(self.device) for t in (batch.degraded, batch.clean, batch.mask))
        adversarial = self.step >= c.warmup_steps
        lr = c.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * self.step / max(c.steps, 1))))
        for group in (*self.opt_g.param_groups, *self.opt_d.param_groups):
            group["lr"] = lr  # a function of the step, so a resumed run follows the same schedule
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            restored, mask_logits = self.g(x)
            rec = losses.reconstruction(restored.float(), y, c.ssim_weight, m, c.hole_weight)
            msk = losses.mask_loss(mask_logits.float(), m)
            loss = rec + c.mask_weight * msk
            adv = torch.zeros((), device=self.device)
            if adversarial:
                adv = losses.g_hinge(self.d(restored).float())
                loss = loss + c.adv_weight * adv
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self._clip(self.opt_g, self.g)
        self.scaler.step(self.opt_g)
        out = {"rec": rec.item(), "mask": msk.item(), "g_adv": adv.item()}
        if adversarial:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                d_loss = losses.d_hinge(self.d(y).float(), self.d(restored.detach()).float())
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler.scale(d_loss).backward()
            self._clip(self.opt_d, self.d)
            self.scaler.step(self.opt_d)
            out["d"] = d_loss.item()
        self.scaler.update()
        self._update_ema()
        self.step += 1
        return out

    def _clip(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> None:
        """Clip the gradient norm: at lr 1e-3 an unclipped run blew up once (step ~1270, mask
        loss 30x) and took the EMA weights with it."""
        self.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.clip_grad)

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))  # warm start
        for e, p in zip(self.ema.parameters(), self.g.parameters(), strict=True):
            e.lerp_(p, 1 - decay)

    # -- validation ---------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self, with_baseline: bool = False) -> dict[str, float]:
        c = self.config
        val = validation_set(self.val_images, c.seed, c.val_crop, c.val_crops, self.val_degradation)
        return evaluate(self.ema, val, self.device, with_baseline)

    # -- checkpoints ----------------------------------------------------------------------------

    def save_state(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "step": self.step,
            "g": self.g.state_dict(),
            "d": self.d.state_dict(),
            "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": self.history,
            "sessions": self.sessions,
        }
        tmp = directory / (STATE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(directory / STATE)

    def init_from(self, model: torch.nn.Module) -> None:
        """Start the generator (and its EMA) from another checkpoint's weights: fine-tuning."""
        self.g.load_state_dict(model.state_dict(), strict=True)
        self.ema.load_state_dict(model.state_dict(), strict=True)

    def load_state(self, directory: Path) -> bool:
        path = directory / STATE
        if not path.exists():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        for name in ("g", "d", "ema", "opt_g", "opt_d", "scaler"):
            getattr(self, name).load_state_dict(state[name])
        self.step, self.history = state["step"], state["history"]
        self.sessions = state.get("sessions", [])  # states saved before sessions were kept have none
        return True

    def run(
        self,
        directory: Path,
        resume: bool = True,
        state_every: int = 250,
        session: dict[str, Any] | None = None,
        deadline: float | None = None,
    ) -> None:
        """Train to ``config.steps`` (or until ``time.monotonic()`` passes ``deadline``), saving the
        state every ``state_every`` steps; ``session`` (how this run was started) goes into the
        state's list of sessions with its step range."""
        c = self.config
        entry, begun = begin_session(self, directory, resume, session)
        started, running = time.perf_counter(), []
        make = functools.partial(
            step_batch, self.train_images, c.seed, c.batch, c.crop, self.degradation, c.augment
        )
        for batch in batch_loader(make, self.step, c.steps, c.workers):
            running.append(self.train_step(batch))
            if self.step % 50 == 0 or self.step == c.steps:
                mean = {k: float(np.mean([r.get(k, 0.0) for r in running])) for k in running[-1]}
                rate = len(running) / (time.perf_counter() - started)
                self.log(
                    f"step {self.step}/{c.steps} "
                    + " ".join(f"{k}={v:.4f}" for k, v in mean.items())
                    + f" ({rate:.2f} steps/s)"
                )
                self.history.append({"step": self.step, **mean})
                running, started = [], time.perf_counter()
            if self.step % c.val_every == 0 and self.step < c.steps:
                self.log("validation " + _fmt(self.validate()))
            if self.step % state_every == 0:
                entry.update(to_step=self.step, wall_seconds=round(time.monotonic() - begun))
                self.save_state(directory)
            if deadline is not None and time.monotonic() > deadline:
                self.log(f"stopped at step {self.step} of {c.steps}: out of time")
                break
        entry.update(to_step=self.step, wall_seconds=round(time.monotonic() - begun))
        self.save_state(directory)


def begin_session(
    trainer, directory: Path, resume: bool, session: dict[str, Any] | None
) -> tuple[dict[str, Any], float]:
    """Resume ``trainer`` from ``directory``'s state (if asked and there) and open its session
    entry (how the run was started, with its step range); returns it and the start time."""
    if resume and trainer.load_state(directory):
        trainer.log(f"resumed at step {trainer.step}")
    entry = (session or {}) | {"from_step": trainer.step, "to_step": trainer.step, "wall_seconds": 0}
    trainer.sessions.append(entry)
    return entry, time.monotonic()


def evaluate(
    model: torch.nn.Module, val: Degraded, device: torch.device, with_baseline: bool
) -> dict[str, float]:
    """PSNR/SSIM of the degraded input, (optionally) the classical baseline, and the model; mask F1."""
    model.eval()
    restored, logits = [], []
    for x in val.degraded.split(4):
        r, l = model(x.to(device))
        restored.append(r.float().clamp(0, 1).cpu())
        logits.append(l.float().cpu())
    restored, prob = torch.cat(restored), torch.sigmoid(torch.cat(logits))
    y = val.clean
    out = {
        "input_psnr": psnr(val.degraded, y).mean().item(),
        "input_ssim": ssim(val.degraded, y).mean().item(),
        "model_psnr": psnr(restored, y).mean().item(),
        "model_ssim": ssim(restored, y).mean().item(),
        "mask_f1": mask_f1(prob, val.mask).item(),
    }
    clean_out = torch.cat([model(x.to(device))[0].float().clamp(0, 1).cpu() for x in y.split(4)])
    out["clean_psnr"] = psnr(clean_out, y).mean().item()  # restoration must do no harm
    if with_baseline:
        base, masks = zip(
            *(classical_restore(img.permute(1, 2, 0).numpy()) for img in val.degraded), strict=False
        )
        base_t = torch.from_numpy(np.stack(base)).permute(0, 3, 1, 2)
        out["baseline_psnr"] = psnr(base_t, y).mean().item()
        out["baseline_ssim"] = ssim(base_t, y).mean().item()
        out["baseline_mask_f1"] = mask_f1(
            torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)), val.mask
        ).item()
    return out


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items())


def export(trainer: Trainer, directory: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Save the EMA generator as a checkpoint with its card (config, data, seed, metrics)."""
    c = trainer.config
    card = card | {
        "architecture": c.architecture,
        "config": c.arch_config,
        "task": "restore",
        "training": asdict(c)
        | {
            "steps_done": trainer.step,
            "device": str(trainer.device),
            "degradation_digest": trainer.degradation.digest(),
        },
        "history": trainer.history[-20:],
        "sessions": trainer.sessions,
    }
    return save_checkpoint(trainer.ema, directory, card)
