"""Ingest throughput against a naive fetch-and-hash loop, both measured in this run.

Puts N synthetic JPEG scans (0.5-2 MP) into moto's S3 server on 127.0.0.1, then times
(a) a sequential loop of boto3 get_object + sha256 over the same keys, and
(b) the full ingest flow (fetch, hash, decode, metadata, thumbnails, catalogue, events)
into a fresh SQLite catalogue. Prints both times, files per second and the ratio flow/naive.
The Prefect API server is started before the clock starts; its start-up is not counted.

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

    # (a) the baseline: what a careful script would do to just fetch and checksum.
    t, cpu = time.perf_counter(), busy_seconds()
    for key in keys:
        body = client.get_object(Bucket="scans", Key=key)["Body"]
        digest = hashlib.sha256()
        while chunk := body.read(1 << 20):
            digest.update(chunk)
    naive, naive_cpu = time.perf_counter() - t, busy_seconds() - cpu

    # (b) the full ingest flow.
    from prefect.testing.utilities import prefect_test_harness

    from flows.ingest import ingest_collection
    from flows.settings import DbSettings, IngestSettings, Settings, StoreSettings

    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        settings = Settings(
            db=DbSettings(url=f"sqlite:///{tmp}/bench.db"),
            store=StoreSettings(
                output=Path(tmp, "out").as_uri(),
                endpoint_url=endpoint,
                access_key_id="bench",
                secret_access_key="bench",
            ),
            ingest=IngestSettings(concurrency=args.concurrency, batch_size=args.batch_size),
        )
        t, cpu = time.perf_counter(), busy_seconds()
        summary = ingest_collection("s3://scans/inbox", "bench", settings)
        flow, flow_cpu = time.perf_counter() - t, busy_seconds() - cpu
    server.terminate()
    server.wait()
    assert summary.new == args.n, summary.counts()

    cores = os.cpu_count()
    print(
        f"(a) naive get_object + sha256, sequential : {naive:7.2f} s  {args.n / naive:7.1f} files/s"
        f"  (machine busy {naive_cpu:.1f} core-s of {naive * cores:.1f})"
    )
    setup = f"concurrency {args.concurrency}, batch {args.batch_size}"
    print(
        f"(b) ingest flow ({setup}) : {flow:7.2f} s  {args.n / flow:7.1f} files/s"
        f"  (machine busy {flow_cpu:.1f} core-s of {flow * cores:.1f})"
    )
    print(
        f"ratio flow/naive = {flow / naive:.2f}  (goal <= 1.0; the flow also decodes, extracts metadata, "
        "writes thumbnails and records provenance)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
