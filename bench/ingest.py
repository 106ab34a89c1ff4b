"""Ingest throughput against what a user would do instead, all measured in this run.

Puts N synthetic JPEG scans (0.5-2 MP) into moto's S3 server on 127.0.0.1, then times
(a) a sequential loop of boto3 get_object + sha256 over the same keys (a quarter of the work);
(b) the full ingest flow (fetch, hash, decode, metadata, thumbnails, catalogue, events)
    into a fresh SQLite catalogue;
(c) a sequential script doing the same work as the flow without Prefect, as a careful user would
    write it: fetch, sha256, full decode, metadata (size, mode, DPI, ICC, EXIF), a JPEG thumbnail
    written to the output folder, one catalogue insert per file (SQLite);
(d) (a) and (b) again through a proxy on 127.0.0.1 that waits 20 ms before each answer (S3's
    typical first-byte latency), where the flow's concurrency should tell.
Prints every time and ratio, ending with two lines a script can read:
``ratio flow/same-work = X`` (goal <= 0.6) and ``ratio flow/fetch-and-hash at 20 ms = Y`` (goal
<= 1.0). The Prefect API server is started before the clock starts; its start-up is not counted.

    .venv/bin/python bench/ingest.py [--n 500] [--concurrency 8] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
LATENCY = 0.020


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def busy_seconds() -> float:
    """CPU time spent by the whole machine (all processes: moto's server too), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, idle, iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def wait_for(client, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            client.list_buckets()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def synthetic_scan(base: np.ndarray, rng: np.random.Generator) -> bytes:
    """A unique JPEG of 0.5-2 MP made from a clean image, resized, with noise."""
    megapixels = rng.uniform(0.5, 2.0)
    aspect = rng.uniform(0.66, 1.5)
    w = int((megapixels * 1e6 * aspect) ** 0.5)
    h = int(megapixels * 1e6 / w)
    img = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR), dtype=np.int16)
    img = np.clip(img + rng.integers(-12, 13, img.shape, dtype=np.int16), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(img).save(out, "JPEG", quality=90, dpi=(600, 600))
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import boto3
    from skimage import data

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # moto's server in its own process, as a real S3 endpoint would be (not sharing our GIL).
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    creds = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}
    client = boto3.client("s3", endpoint_url=endpoint, **creds)
    wait_for(client)
    client.create_bucket(Bucket="scans")

    rng = np.random.default_rng(0)
    bases = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    t = time.perf_counter()
    keys = [f"inbox/box {i // 100:02d}/scan {i:05d}.jpg" for i in range(args.n)]
    blobs = [synthetic_scan(bases[i % len(bases)], rng) for i in range(args.n)]
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda kv: client.put_object(Bucket="scans", Key=kv[0], Body=kv[1]),
                zip(keys, blobs, strict=False),
            )
        )
    total = sum(map(len, blobs))
    print(
        f"put {args.n} scans ({total / 1e6:.0f} MB, mean {total / args.n / 1e6:.2f} MB) in {time.perf_counter() - t:.1f} s"
    )

    from prefect.testing.utilities import prefect_test_harness

    from tests.services import FaultyProxy

    with (
        tempfile.TemporaryDirectory() as tmp,
        prefect_test_harness(server_startup_timeout=120),
        FaultyProxy(endpoint, rate=0.0, delay=LATENCY) as slow,
    ):
        slow_client = boto3.client("s3", endpoint_url=slow.url, **creds)
        naive, naive_cpu = timed(lambda: fetch_and_hash(client, keys))
        flow, flow_cpu, summary = timed_flow(endpoint, Path(tmp, "flow"), args)
        same, same_cpu = timed(lambda: same_work(client, keys, Path(tmp, "same")))
        naive_slow, _ = timed(lambda: fetch_and_hash(slow_client, keys))
        flow_slow, _, summary_slow = timed_flow(slow.url, Path(tmp, "flow-slow"), args)
    server.terminate()
    server.wait()
    assert summary.new == args.n and summary_slow.new == args.n, (summary.counts(), summary_slow.counts())

    cores = os.cpu_count()
    setup = f"concurrency {args.concurrency}, batch {args.batch_size}"
    rows = [
        ("(a) fetch + sha256, sequential", naive, naive_cpu),
        (f"(b) ingest flow ({setup})", flow, flow_cpu),
        ("(c) same work as the flow, sequential script", same, same_cpu),
        (f"(d) fetch + sha256 at {LATENCY * 1000:.0f} ms latency", naive_slow, None),
        (f"(d) ingest flow at {LATENCY * 1000:.0f} ms latency", flow_slow, None),
    ]
    for label, seconds, busy in rows:
        load = f"  (machine busy {busy:.1f} core-s of {seconds * cores:.1f})" if busy is not None else ""
        print(f"{label:52s}: {seconds:7.2f} s  {args.n / seconds:7.1f} files/s{load}")
    print(f"ratio flow/fetch-and-hash = {flow / naive:.2f}  (the loop does a quarter of the work)")
    print(f"ratio flow/same-work = {flow / same:.2f}")
    print(f"ratio flow/fetch-and-hash at {LATENCY * 1000:.0f} ms = {flow_slow / naive_slow:.2f}")
    return 0


def timed(fn) -> tuple[float, float]:
    t, cpu = time.perf_counter(), busy_seconds()
    fn()
    return time.perf_counter() - t, busy_seconds() - cpu


def fetch_and_hash(client, keys: list[str]) -> None:
    """What a careful script would do to just fetch and checksum."""
    for key in keys:
        body = client.get_object(Bucket="scans", Key=key)["Body"]
        digest = hashlib.sha256()
        while chunk := body.read(1 << 20):
            digest.update(chunk)


def same_work(client, keys: list[str], folder: Path, thumbnail_px: int = 256) -> None:
    """The flow's work without Prefect, one file at a time: fetch, sha256, full decode, technical
    metadata and EXIF, a JPEG thumbnail in the output folder, one catalogue insert per file."""
    import json
    import sqlite3

    folder.mkdir(parents=True)
    db = sqlite3.connect(folder / "catalogue.db")
    db.execute(
        "create table items (key text primary key, sha256 text, width int, height int, mode text,"
        " dpi text, icc int, exif text, thumbnail text)"
    )
    for key in keys:
        data = client.get_object(Bucket="scans", Key=key)["Body"].read()
        digest = hashlib.sha256(data).hexdigest()
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # the whole image decoded, as the flow checks it
            exif = json.dumps({str(k): str(v)[:200] for k, v in img.getexif().items()})
            row = (
                img.width,
                img.height,
                img.mode,
                str(img.info.get("dpi")),
                int("icc_profile" in img.info),
                exif,
            )
            thumb = img.convert("RGB")
            thumb.thumbnail((thumbnail_px, thumbnail_px), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            thumb.save(buf, "JPEG", quality=85)
        name = f"{digest}.jpg"
        (folder / name).write_bytes(buf.getvalue())
        db.execute("insert into items values (?, ?, ?, ?, ?, ?, ?, ?, ?)", (key, digest, *row, name))
        db.commit()
    db.close()


def timed_flow(endpoint: str, folder: Path, args) -> tuple[float, float, object]:
    """The ingest flow from ``endpoint`` into a fresh SQLite catalogue and output folder."""
    from flows.ingest import ingest_collection
    from flows.settings import DbSettings, IngestSettings, Settings, StoreSettings

    folder.mkdir(parents=True)
    settings = Settings(
        db=DbSettings(url=f"sqlite:///{folder}/bench.db"),
        store=StoreSettings(
            output=(folder / "out").as_uri(),
            endpoint_url=endpoint,
            access_key_id="bench",
            secret_access_key="bench",
        ),
        ingest=IngestSettings(concurrency=args.concurrency, batch_size=args.batch_size),
    )
    t, cpu = time.perf_counter(), busy_seconds()
    summary = ingest_collection("s3://scans/inbox", "bench", settings)
    return time.perf_counter() - t, busy_seconds() - cpu, summary


if __name__ == "__main__":
    sys.exit(main())
