"""Training the staged restorer's stages on a lent GPU for a fixed budget of wall-clock time.

The device machine has torch but no Prefect, SQLAlchemy or network, and gives back at most eight
files of 16 MiB: so this needs only ``restoration/``, reads its photographs from one pinned pack
made here, and writes each stage as a checkpoint (weights and card) into ``--out``. The training
state stays on the device (a lease is short; the exported EMA weights are what comes back).

    python -m restoration.device_train pack .device/bundled.npz           # here, once
    cp /usr/share/backgrounds/mate/nature/*.jpg .device/mate/             # likewise
    cp /usr/share/backgrounds/*_by_*.jpg .device/lomiri/                   # lomiri-wallpapers-16.04
    python -m restoration.device_train train --stage detect --images .device/bundled.npz \\
        --photos .device/mate --collection lomiri=.device/lomiri --out $OUT/detect --seconds 420 \\
        --init restoration/weights/restore-unet/v7 --hard-negatives restoration/weights/restore-unet/v7 \\
        --code-version 0.1.0+g…                                            # there

Each stage is trained as ``archive train stage`` would train it (denoise: the single U-Net on
noise, grain, blur and compression alone, with many untouched crops so that clean texture passes
through), with larger batches and crops, and stops
at ``--seconds`` wherever its schedule is; the card says how far it got. ``--stage upscale``
trains an enlarger as ``archive train upscale`` would (``--architecture``, ``--scale``,
``--arch-config '{"num_feat": 64, "num_conv": 16}'`` for a larger one than 2 CPU cores can train).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from restoration import photos
from restoration.data import TRAIN_IMAGES, VALIDATION_IMAGES, data_card, digest
from restoration.degrade.enlarge import PRESETS
from restoration.recipe import ENLARGERS, STAGE_ARCHITECTURES, enlarger_config
from restoration.stage_training import (
    StageConfig,
    StageTrainer,
    export,
    hard_negatives_from,
    init_stage,
)


def pack(path: Path) -> None:
    """The bundled images (scikit-image's and matplotlib's), train and held-out, in one file: the
    device has those packages, but scikit-image fetches some of its images over the network."""
    from restoration.data import bundled_images

    train, val = bundled_images(TRAIN_IMAGES), bundled_images(VALIDATION_IMAGES)
    arrays = {f"train/{k}": v for k, v in train.items()} | {f"val/{k}": v for k, v in val.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    print(
        f"wrote {path}: {len(train)} training and {len(val)} held-out images; train digest {digest(train)[:16]}…"
    )


def unpack(
    path: Path, photos_root: Path | None = None, collections: dict[str, Path] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The pack's images, and the pinned Debian photographs from ``photos_root`` (mate-backgrounds)
    and ``collections`` ({"lomiri": folder, …}: :data:`restoration.photos.MORE`, each folder laid
    out as the package installs it), each checked against its sha256, as (training, held-out) sets."""
    with np.load(path) as z:
        train = {k.removeprefix("train/"): z[k] for k in z.files if k.startswith("train/")}
        val = {k.removeprefix("val/"): z[k] for k in z.files if k.startswith("val/")}
    if photos_root is not None:
        train |= photos.load(photos.TRAIN, photos_root)
        val |= photos.load(photos.HELD_OUT, photos_root)
    more, more_val, _ = photos.more_photographs(collections or {})
    return train | more, val | more_val


def _collections(specs: list[str]) -> dict[str, Path]:
    known = {c.prefix for c in photos.MORE}
    out = {}
    for spec in specs:
        name, _, folder = spec.partition("=")
        if name not in known or not folder:
            raise SystemExit(f"--collection {spec!r}: expected NAME=FOLDER, NAME one of {sorted(known)}")
        out[name] = Path(folder)
    return out


def train(args: argparse.Namespace) -> None:
    started = time.monotonic()
    deadline = started + args.seconds
    torch.set_num_threads(2)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    collections = _collections(args.collection)
    train_set, val_set = unpack(Path(args.images), Path(args.photos) if args.photos else None, collections)
    out = Path(args.out)

    def log(line: str) -> None:
        print(f"[{args.stage} {time.monotonic() - started:6.1f}s] {line}", flush=True)

    how = {
        "command": "python -m restoration.device_train " + " ".join(sys.argv[1:]),
        "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "code_version": args.code_version,
    }
    card = {
        "name": args.name,
        "version": args.version,
        "code_version": args.code_version,
        "software": {"torch": torch.__version__, "python": sys.version.split()[0]},
        "data": {
            **data_card(train_set, val_set),
            "photographs": (photos.card_entries(photos.TRAIN + photos.HELD_OUT) if args.photos else [])
            + [e for c in photos.MORE if c.prefix in collections for e in c.card_entries()],
        },
    }
    arch_config = json.loads(args.arch_config)
    arch = args.architecture if args.stage == "upscale" else STAGE_ARCHITECTURES[args.stage]
    extra = {}
    if args.stage == "upscale":  # an enlarger: its scale argument, and the SRGAN-style schedule
        arch_config = enlarger_config(arch, arch_config, args.scale)
        warmup = int(args.steps * 0.83) if args.warmup_steps is None else args.warmup_steps
        extra = {"scale": args.scale, "adv_weight": args.adv_weight, "warmup_steps": warmup}
        small = PRESETS[args.degradation] | json.loads(args.probabilities)
        extra |= {"disc_config": {"ndf": 64}, "enlarge": small}
    config = StageConfig(
        stage=args.stage,
        architecture=arch,
        arch_config=arch_config,
        steps=args.steps,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        workers=args.workers,
        val_every=args.val_every,
        seed=args.seed,
        focus=args.focus if args.hard_negatives else 0.0,
        zoom=args.zoom,
        untouched=args.untouched,  # None: the stage's own
        **extra,
    )
    if args.stage != "upscale":
        config.change_mixture(json.loads(args.probabilities))
    points = None
    if args.hard_negatives:
        points, how["hard_negatives"] = hard_negatives_from(
            Path(args.hard_negatives), list(train_set.values()), args.seed
        )
        log(f"hard negatives: {how['hard_negatives']['points']} points; {args.focus:.0%} of crops on one")
    trainer = StageTrainer(
        config,
        list(train_set.values()),
        list(val_set.values()),
        device=device,
        log=log,
        focus_points=points,
    )
    if args.init:
        how["init"] = init_stage(trainer, Path(args.init), args.stage)
        log(f"initialised from {args.init} ({how['init']['weights_sha256'][:16]}…)")
    trainer.run(
        Path(args.state or f"/tmp/device-train-{args.stage}"),
        resume=False,
        session=how,
        deadline=deadline,
        state_every=10**9,
    )
    metrics = trainer.validate()
    log("final validation " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    how["wall_seconds"] = round(time.monotonic() - started)
    written = export(trainer, out, card | {"metrics": metrics, "how": how})
    log(f"wrote {out} (sha256 {written['weights_sha256'][:16]}…) after {trainer.step} steps")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m restoration.device_train")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("path")
    t = sub.add_parser("train")
    t.add_argument("--stage", choices=["detect", "inpaint", "denoise", "upscale"], required=True)
    t.add_argument("--architecture", choices=list(ENLARGERS), default="srvgg_compact", help="upscale")
    t.add_argument("--scale", type=int, choices=[2, 4], default=2, help="upscale: the enlargement")
    t.add_argument("--adv-weight", type=float, default=0.005, help="upscale: after warm-up")
    t.add_argument("--warmup-steps", type=int, default=None, help="upscale (default: 83%% of --steps)")
    t.add_argument(
        "--degradation",
        choices=list(PRESETS),
        default="scans",
        help="upscale: how the small copies are made (restoration.degrade.enlarge.PRESETS)",
    )
    t.add_argument("--images", required=True)
    t.add_argument(
        "--photos",
        default=None,
        help=f"a folder holding the mate-backgrounds photographs ({photos.ROOT} here)",
    )
    t.add_argument("--out", required=True)
    t.add_argument(
        "--state", default=None, help="where the resumable state goes (default /tmp/device-train-STAGE)"
    )
    t.add_argument(
        "--seconds", type=float, required=True, help="wall-clock budget, start-up and validation included"
    )
    t.add_argument("--steps", type=int, default=6000, help="the schedule's length (it may stop sooner)")
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--crop", type=int, default=256)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--workers", type=int, default=4)
    t.add_argument("--val-every", type=int, default=2000)
    t.add_argument("--arch-config", default="{}")
    t.add_argument(
        "--probabilities",
        default="{}",
        help="JSON: effect probabilities to change in the stage's mixture (upscale: EnlargeDegradation fields)",
    )
    t.add_argument("--untouched", type=float, default=None, help="detect, denoise: share of crops left clean")
    t.add_argument("--init", default=None, help="a checkpoint (a stage's, or a pipeline's) to start from")
    t.add_argument(
        "--collection",
        action="append",
        default=[],
        help="NAME=FOLDER: more pinned photographs (lomiri, plasma), the folder laid out as the package installs it",
    )
    t.add_argument(
        "--hard-negatives",
        default=None,
        help="detect: a checkpoint whose marks on clean photographs to centre crops on",
    )
    t.add_argument(
        "--focus",
        type=float,
        default=0.4,
        help="detect, with --hard-negatives: the share of crops centred on one",
    )
    parser.add_argument(
        "--zoom",
        type=float,
        default=2.0,
        help="detect, denoise, inpaint: crops zoom out up to this many times (whole scenes at a print's size)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--name", default="restore-pipeline")
    t.add_argument("--version", default="v1-stage")
    t.add_argument("--code-version", required=True)
    args = parser.parse_args(argv)
    pack(Path(args.path)) if args.command == "pack" else train(args)


if __name__ == "__main__":
    main()
