"""Memory of `archive export-bag` on a 1,000-item collection (goal: peak under 300 MB).

Writes --n small scans to a folder, ingests and restores them into a fresh SQLite catalogue with
an untrained restore-unet (not timed: this measures the export), then runs the export in a child
process with the masters and every version, and prints its time, the bag's size, the peak
resident memory of the child, and, as the baseline measured in the same run, the peak of a child
that only imports the same modules and opens the catalogue: the difference is what the export
itself holds. bagit's own validator checks the bag at the end.

    .venv/bin/python bench/export_bag.py [--n 1000] [--size 96]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def child(db: str, output: str, out: str, export: bool) -> None:
    """Export (or, for the baseline, only open the catalogue), then report time and peak memory."""
    from _memory import peak_rss_mb

    from flows.db import sessions_for
    from flows.export import export_bag
    from flows.settings import DbSettings, Settings, StoreSettings

    settings = Settings(db=DbSettings(url=db), store=StoreSettings(output=output))
    started = time.perf_counter()
    result = {}
    if export:
        summary = export_bag(settings, Path(out), collection="bench", masters=True, versions="all")
        result = {
            "items": summary.items,
            "files": summary.files,
            "bytes": summary.bytes,
            "failed": len(summary.failed),
        }
    else:
        with sessions_for(db)() as session:
            session.execute(__import__("sqlalchemy").text("select count(*) from items")).scalar()
    result |= {
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_rss_mb(),
    }
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--child", nargs=4, metavar=("DB", "OUTPUT", "OUT", "EXPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        db, output, out, export = args.child
        child(db, output, out, export == "1")
        return 0

    from dispatch import scans, untrained

    from flows.ingest import ingest_collection
    from flows.model_versions import register
    from flows.restore import restore_collection
    from flows.settings import DbSettings, Settings, StoreSettings

    tmp = Path(tempfile.mkdtemp(prefix="bench-bag-"))
    inbox = tmp / "inbox"
    inbox.mkdir()
    for i, data in enumerate(scans(args.n, args.size)):
        (inbox / f"scan-{i:04d}.png").write_bytes(data)
    untrained(tmp / "model", "unet_restorer_test")
    db, output = f"sqlite:///{tmp}/catalogue.db", (tmp / "out").as_uri()
    settings = Settings(db=DbSettings(url=db), store=StoreSettings(output=output))
    register(settings, tmp / "model", status="production")
    ingest_collection(str(inbox), "bench", settings)
    restore_collection("bench", "bench-unet@v1", settings=settings)

    def run(out: str, export: bool) -> dict:
        done = subprocess.run(
            [sys.executable, __file__, "--child", db, output, out, "1" if export else "0"],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    base = run(str(tmp / "none"), False)
    bag = run(str(tmp / "bag"), True)
    import bagit

    bagit.Bag(str(tmp / "bag")).validate()
    print(f"{args.n} items of {args.size}x{args.size}, masters and every version, SQLite, local store")
    print(
        f"export: {bag['items']} items, {bag['files']} files, {bag['bytes'] / 1e6:.1f} MB in {bag['seconds']:.1f} s "
        f"({bag['items'] / bag['seconds']:.0f} items/s); {bag['failed']} left out; bagit validates it"
    )
    print(
        f"peak resident memory: export {bag['peak_mb']:.0f} MB, baseline (same imports, catalogue opened) "
        f"{base['peak_mb']:.0f} MB: the export holds {bag['peak_mb'] - base['peak_mb']:.0f} MB (goal: peak < 300 MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
