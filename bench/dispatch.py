"""Orchestration and provenance cost of restoring a collection, both measured in this run.

Writes N small scans (PNG) to a folder and ingests them into a fresh SQLite catalogue (not
timed; the Prefect API server starts there). Then restores the same scans
(a) by a plain loop that reads each file, runs the engine on it and writes a PNG, and
(b) with restore_collection in-process: batches as Prefect subflows, master fixity checks,
    lossless image with XMP/EXIF, access JPEG, mask, sidecar, catalogue rows and events.
Both use the same model (an untrained restore-unet: weights do not change the speed) and the
same engine settings. Prints both times and the ratio b/a (goal <= 1.15).

    .venv/bin/python bench/dispatch.py [--n 200] [--size 256]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def scans(n: int, size: int) -> list[bytes]:
    from skimage import data

    base = np.asarray(Image.fromarray(data.astronaut()).resize((size * 2, size * 2)))
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        y, x = rng.integers(0, size, 2)
        crop = base[y : y + size, x : x + size].astype(np.int16) + rng.integers(-20, 21, (size, size, 3))
        buf = io.BytesIO()
        Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def untrained(directory: Path, architecture: str):
    """An untrained restorer saved as the checkpoint bench-unet@v1 (weights do not change speed)."""
    import torch

    from restoration.checkpoints import save_checkpoint
    from restoration.factory import create_model

    torch.manual_seed(0)
    model = create_model(architecture)
    card = {
        "architecture": architecture,
        "config": {},
        "name": "bench-unet",
        "version": "v1",
        "task": "restore",
    }
    save_checkpoint(model, directory, card | {"metrics": {}})
    return model


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()

    import torch

    from flows.ingest import ingest_collection
    from flows.model_versions import register
    from flows.restore import restore_collection
    from flows.settings import DbSettings, RestoreSettings, Settings, StoreSettings
    from restoration.engine import EngineConfig, Restorer

    tmp = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    inbox = tmp / "inbox"
    inbox.mkdir()
    for i, data in enumerate(scans(args.n, args.size)):
        (inbox / f"scan-{i:04d}.png").write_bytes(data)
    model = untrained(tmp / "model", "unet_restorer")
    settings = Settings(
        db=DbSettings(url=f"sqlite:///{tmp}/catalogue.db"),
        store=StoreSettings(output=(tmp / "out").as_uri()),
        restore=RestoreSettings(),
    )
    register(settings, tmp / "model", status="production")
    ingest_collection(str(inbox), "bench", settings)  # starts the Prefect server; not timed

    engine = Restorer(model, EngineConfig(tile=settings.restore.tile, overlap=64))
    engine.restore([np.zeros((64, 64, 3), np.uint8)])  # warm-up
    plain = tmp / "plain"
    plain.mkdir()
    started = time.perf_counter()
    for path in sorted(inbox.iterdir()):
        with Image.open(path) as img:
            pixels = np.asarray(img)
        result = engine.restore([pixels])[0]
        Image.fromarray(result.image).save(plain / path.name, "PNG")
    t_plain = time.perf_counter() - started

    started = time.perf_counter()
    summary = restore_collection("bench", "bench-unet@v1", settings=settings)
    t_flow = time.perf_counter() - started
    assert summary.restored == args.n, summary.headline()

    mp = args.n * args.size * args.size / 1e6
    print(
        f"{args.n} scans of {args.size}x{args.size} ({mp:.1f} MP), torch threads {torch.get_num_threads()}, "
        f"{summary.batches} batch(es)"
    )
    print(
        f"(a) engine in a plain loop (read, restore, write PNG): {t_plain:7.2f} s  {args.n / t_plain:6.1f} scans/s"
    )
    print(
        f"(b) restore_collection in-process (with provenance):   {t_flow:7.2f} s  {args.n / t_flow:6.1f} scans/s"
    )
    print(f"ratio b/a = {t_flow / t_plain:.2f}  (goal <= 1.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
