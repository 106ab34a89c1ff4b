"""Real parts for the tests: a throwaway PostgreSQL cluster, moto's S3 server over HTTP, Prefect."""

from __future__ import annotations

import os
import uuid

import pytest

# Prefect's test server otherwise phones home (no network here) and logs a locked-database error.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# In-process calls of the CLI share the test process: no watchdog of its children (one test starts it in a subprocess).
os.environ.setdefault("ARCHIVE_WATCHDOG", "0")

from archive_db.engine import make_engine, session_factory
from archive_db.migrate import upgrade
from flows.settings import DbSettings, IngestSettings, Settings, StoreSettings
from tests.services import free_port, new_pg_database, pg_bindir, throwaway_postgres


@pytest.fixture(scope="session")
def pg_server():
    """Start a PostgreSQL cluster for the session; skip (or fail, in CI) where it cannot run."""
    if pg_bindir() is None:
        message = "PostgreSQL binaries (initdb, pg_ctl) not found: PostgreSQL catalogue tests cannot run"
        if os.environ.get("ARCHIVE_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " and ARCHIVE_REQUIRE_POSTGRES=1")
        pytest.skip(message)
    with throwaway_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """An empty catalogue built by the migrations, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/catalogue.db"
    else:
        url = new_pg_database(request.getfixturevalue("pg_server"))
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


# ---------------------------------------------------------------- S3 (moto's standalone server)


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_settings(s3_endpoint) -> StoreSettings:
    return StoreSettings(
        endpoint_url=s3_endpoint,
        access_key_id="testing",
        secret_access_key="testing",
        region="us-east-1",
        max_attempts=2,
    )


@pytest.fixture
def bucket(s3_settings) -> str:
    """A fresh, empty bucket on the moto server."""
    import boto3

    name = f"scans-{uuid.uuid4().hex[:10]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_settings.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return name


# ---------------------------------------------------------------- Prefect


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def session(db_url):
    """A session on the migrated catalogue of ``db_url`` (both databases)."""
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    """Settings for one test: its own catalogue and output folder, small batches."""
    return Settings(
        db=DbSettings(url=db_url),
        store=StoreSettings(output=(tmp_path / "out").as_uri()),
        ingest=IngestSettings(batch_size=8, concurrency=4, batches_in_flight=2, max_pixels=50_000_000),
    )
