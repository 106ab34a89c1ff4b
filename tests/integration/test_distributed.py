"""A real distributed run: `prefect server`, a `process` work pool and worker, the restore-batch
deployment from this working tree, masters in moto's S3 server, the catalogue in PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from archive_db.models import Derivative, Event, Item, Run
from flows.db import sessions_for
from flows.settings import DbSettings, RestoreSettings, Settings
from flows.storage.store import open_store, read_all
from tests import samples
from tests.services import REPO, free_port, new_pg_database

pytestmark = pytest.mark.postgres


@contextmanager
def started(args: list[str], env: dict, log):
    """A subprocess in its own process group, stopped (with its children) on the way out."""
    proc = subprocess.Popen(
        args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO
    )
    try:
        yield proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                continue


def wait_for(check, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


def test_restore_collection_on_a_real_server_and_process_worker(pg_server, s3_settings, bucket, tmp_path):
    from tests.flows.test_restore import checkpoint

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    settings = Settings(
        db=DbSettings(url=new_pg_database(pg_server)),
        store=s3_settings.model_copy(update={"output": f"s3://{bucket}/output"}),
        restore=RestoreSettings(tile=64, threads=2),
    )
    env = os.environ | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
        "ARCHIVE_DB__URL": settings.db.url,
        "ARCHIVE_STORE__OUTPUT": settings.store.output,
        "ARCHIVE_STORE__ENDPOINT_URL": s3_settings.endpoint_url,
        "ARCHIVE_STORE__ACCESS_KEY_ID": "testing",
        "ARCHIVE_STORE__SECRET_ACCESS_KEY": "testing",
        "ARCHIVE_RESTORE__TILE": "64",
        "ARCHIVE_RESTORE__THREADS": "2",
        "ARCHIVE_RESTORE__BATCH_PIXELS": str(3 * 200 * 160),  # 7 scans: batches of 3, 3 and 1
    }
    prefect = [sys.executable, "-m", "prefect"]
    with (
        open(tmp_path / "server.log", "wb") as server_log,
        open(tmp_path / "worker.log", "wb") as worker_log,
        started([*prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, server_log),
    ):
        wait_for(lambda: urllib.request.urlopen(f"{api}/health", timeout=2).status == 200, "prefect server")
        subprocess.run(
            [*prefect, "work-pool", "create", "gpu", "--type", "process"],
            env=env,
            check=True,
            capture_output=True,
            cwd=REPO,
        )
        deploy = (
            "from prefect import flow\n"
            f"flow.from_source(source={str(REPO)!r}, entrypoint='flows/derive/worker.py:restore_batch')"
            ".deploy(name='restore-batch', work_pool_name='gpu', print_next_steps=False)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", deploy], env=env, capture_output=True, text=True, cwd=REPO
        )
        assert done.returncode == 0, done.stderr[-3000:]

        # Everything from here as a user would: the archive CLI, configured by the environment.
        archive = [sys.executable, "-c", "from flows.cli.main import run; run()"]
        rng = np.random.default_rng(3)
        client = open_store(f"s3://{bucket}/inbox", settings.store).client
        for i in range(7):
            data = samples.encode(Image.fromarray(rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)), "PNG")
            client.put_object(Bucket=bucket, Key=f"inbox/box/scan-{i}.png", Body=data)

        def cli(*args):
            return subprocess.run([*archive, *args], env=env, capture_output=True, text=True, cwd=REPO)  # noqa: E731

        for args in (
            ["ingest", f"s3://{bucket}/inbox", "--collection", "letters"],
            ["models", "register", str(checkpoint(tmp_path, "v1", 1, name="tiny-restorer"))],
        ):
            done = cli(*args)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        with started([*prefect, "worker", "start", "--pool", "gpu", "--type", "process"], env, worker_log):
            done = cli("restore", "--collection", "letters", "--model", "tiny-restorer@v1", "--pool", "gpu")
        assert done.returncode == 0, (
            done.stdout[-2000:] + done.stderr[-2000:] + (tmp_path / "worker.log").read_text()[-3000:]
        )
        assert "Restored 7 of 7 item(s)" in done.stdout

        request = urllib.request.Request(
            f"{api}/flow_runs/filter", data=b"{}", headers={"Content-Type": "application/json"}
        )
        runs = json.loads(urllib.request.urlopen(request, timeout=30).read())
        batch_runs = [r for r in runs if r["deployment_id"]]  # the batches ran as runs of the deployment
        assert len(batch_runs) == 3 and all(r["state_type"] == "COMPLETED" for r in batch_runs)

    out = open_store(settings.store.output, settings.store)
    with sessions_for(settings.db.url)() as s:
        run = s.scalars(select(Run).where(Run.flow == "restore")).one()
        assert run.status == "completed" and run.counts["batches"] == 3 and run.parameters["pool"] == "gpu"
        rows = s.execute(select(Item, Derivative).join(Derivative, Derivative.item_id == Item.id)).all()
        assert len(rows) == 7
        for item, d in rows:
            assert d.run_id == run.id and d.is_current and d.version == 1
            prefix = f"derivatives/letters/{item.id}/restored/v1"
            meta = json.loads(read_all(out, f"{prefix}/metadata.json"))
            assert meta["master"]["sha256"] == item.sha256 and meta["run_id"] == run.id
            assert meta["recipe"]["hash"] == d.recipe_hash
            assert {o.key.rsplit("/", 1)[1] for o in out.list(prefix + "/")} == {
                *meta["derivative"]["files"],
                "metadata.json",
            }
        events = s.scalars(select(Event).where(Event.type == "restoration")).all()
        assert sorted(e.item_id for e in events if e.outcome == "success") == sorted(i.id for i, _ in rows)
