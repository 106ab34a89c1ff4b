"""The catalogue on SQLite and PostgreSQL, with schemas built by the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from archive_db import curation, ledger, queries
from archive_db.engine import make_engine, session_factory
from archive_db.migrate import current_revision, head_revision, include_object, is_up_to_date, upgrade
from archive_db.models import Base, Derivative, Duplicate, Event, Item, Run


def _item(collection_id: int, key: str, sha: str, **kw) -> Item:
    return Item(
        collection_id=collection_id,
        source_uri="file:///scans",
        source_key=key,
        etag="e1",
        sha256=sha,
        size=10,
        status=kw.pop("status", "ingested"),
        **kw,
    )


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migrations_reach_head_and_match_the_models(db_url):
    engine = make_engine(db_url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    tables = set(inspect(engine).get_table_names())
    assert {"collections", "items", "agents", "events", "runs", "model_versions", "derivatives"} <= tables
    upgrade(engine)  # applying again is a no-op
    assert is_up_to_date(engine)
    engine.dispose()


def test_sqlite_catalogue_uses_wal(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_items_unique_per_collection_by_key_and_by_digest(session):
    with session.begin():
        coll = ledger.get_or_create_collection(session, "letters")
        session.add(_item(coll.id, "a.jpg", "a" * 64))
    with pytest.raises(IntegrityError), session.begin():
        session.add(_item(coll.id, "b.jpg", "a" * 64))  # same bytes: a duplicate, not an item
    with pytest.raises(IntegrityError), session.begin():
        session.add(_item(coll.id, "a.jpg", "b" * 64))
    with session.begin():  # the same bytes may be an item of another collection
        other = ledger.get_or_create_collection(session, "postcards")
        session.add(_item(other.id, "a.jpg", "a" * 64))
    assert session.scalar(select(Item).where(Item.collection_id == other.id)).sha256 == "a" * 64


def test_status_is_checked(session):
    with pytest.raises(IntegrityError), session.begin():
        coll = ledger.get_or_create_collection(session, "c")
        session.add(_item(coll.id, "x.jpg", "c" * 64, status="lost"))


def test_one_current_derivative_per_item_and_kind(session):
    with session.begin():
        coll = ledger.get_or_create_collection(session, "c")
        item = _item(coll.id, "x.jpg", "d" * 64)
        session.add(item)
        session.flush()
        for version, current in ((1, False), (2, True)):
            session.add(
                Derivative(
                    item_id=item.id,
                    kind="restored",
                    version=version,
                    recipe_hash=f"r{version}",
                    storage_uri=f"file:///o/v{version}",
                    sha256="e" * 64,
                    size=1,
                    is_current=current,
                )
            )
    with pytest.raises(IntegrityError), session.begin():
        session.add(
            Derivative(
                item_id=item.id,
                kind="restored",
                version=3,
                recipe_hash="r3",
                storage_uri="file:///o/v3",
                sha256="f" * 64,
                size=1,
                is_current=True,
            )
        )
    with pytest.raises(IntegrityError), session.begin():  # re-running a recipe is not a new version
        session.add(
            Derivative(
                item_id=item.id,
                kind="restored",
                version=3,
                recipe_hash="r1",
                storage_uri="file:///o/v3",
                sha256="f" * 64,
                size=1,
            )
        )


def test_times_are_utc_and_json_round_trips(session):
    local = datetime(2026, 1, 2, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with session.begin():
        coll = ledger.get_or_create_collection(session, "c")
        run = ledger.start_run(session, "ingest", {"nested": {"ü": [1, 2.5, None]}}, "0.1.0", coll.id)
        run.started_at = local
    session.expire_all()
    again = session.get(Run, run.id)
    assert again.started_at == local and again.started_at.tzinfo is not None
    assert again.started_at.utcoffset() == timedelta(0)
    assert again.parameters == {"nested": {"ü": [1, 2.5, None]}}


def test_agents_are_reused_and_events_link_to_them(session):
    with session.begin():
        coll = ledger.get_or_create_collection(session, "c")
        item = _item(coll.id, "x.jpg", "1" * 64)
        session.add(item)
        session.flush()
        agent = ledger.get_or_create_agent(session, "software", "Pillow", "11.0")
        assert ledger.get_or_create_agent(session, "software", "Pillow", "11.0").id == agent.id
        ledger.add_event(session, "validation", agent, "success", {"frames": 1}, item_id=item.id)
        ledger.add_event(session, "quarantine", agent, "failure", {"reason": "r"}, item_id=item.id)
    events = queries.item_events(session, item.id)
    assert [(e.type, e.outcome, e.agent.name) for e in events] == [
        ("validation", "success", "Pillow"),
        ("quarantine", "failure", "Pillow"),
    ]
    assert all(e.occurred_at.tzinfo == UTC for e in events)


def test_queries_known_sources_find_item_and_summaries(session):
    with session.begin():
        coll = ledger.get_or_create_collection(session, "c")
        a = _item(coll.id, "dir/a b.jpg", "ab" * 32)
        q = _item(coll.id, "bad.jpg", "cd" * 32, status="quarantined", quarantine_reason="truncated")
        session.add_all([a, q])
        session.flush()
        session.add(Duplicate(collection_id=coll.id, item_id=a.id, source_key="copy.jpg", etag="e9", size=10))
    known = queries.known_sources(session, coll.id)
    assert known == {"dir/a b.jpg": ("e1", a.id), "bad.jpg": ("e1", q.id), "copy.jpg": ("e9", a.id)}
    assert queries.find_item(session, str(a.id)).id == a.id
    assert queries.find_item(session, "abababab").id == a.id
    assert queries.find_item(session, "c/dir/a b.jpg").id == a.id
    assert queries.find_item(session, "c/missing.jpg") is None
    [summary] = queries.collection_summaries(session)
    assert (
        summary.name,
        summary.items,
        summary.ingested,
        summary.quarantined,
        summary.duplicates,
        summary.bytes,
    ) == ("c", 2, 1, 1, 1, 20)
    assert [r[2] for r in queries.items_for_audit(session, coll.id)] == ["dir/a b.jpg", "bad.jpg"]


def test_a_run_whose_process_died_is_marked_abandoned_when_the_next_one_starts(db_url, tmp_path):
    """SIGKILL a real process in the middle of its run: the run stays `running` until the next run
    of the collection starts, which marks it `abandoned`; a run of a live process is left alone."""
    import os
    import signal
    import subprocess
    import sys

    from archive_db import ledger
    from archive_db.models import Run
    from flows.db import ensure_schema, sessions_for

    ensure_schema(db_url)
    with sessions_for(db_url).begin() as s:
        coll = ledger.get_or_create_collection(s, "letters").id
        alive = ledger.start_run(s, "restore", {}, "test", coll).id  # this process's: alive
    script = (
        "import os, signal, sys\nfrom archive_db import ledger\nfrom flows.db import sessions_for\n"
        "with sessions_for(sys.argv[1]).begin() as s:\n    ledger.start_run(s, 'restore', {}, 'test', int(sys.argv[2]))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, db_url, str(coll)], env=os.environ | {"PYTHONPATH": os.getcwd()}
    )
    assert done.returncode == -signal.SIGKILL
    with sessions_for(db_url)() as s:
        killed = s.scalars(select(Run).where(Run.id != alive)).one()
        assert killed.status == "running"
    with sessions_for(db_url).begin() as s:
        ledger.start_run(s, "restore", {}, "test", coll)
    with sessions_for(db_url)() as s:
        assert s.get(Run, killed.id).status == "abandoned" and s.get(Run, killed.id).finished_at is not None
        assert s.get(Run, alive).status == "running"


def test_a_run_on_another_host_is_abandoned_when_its_heartbeat_stops(db_url):
    """A run's pid means nothing on another machine: there the heartbeat tells. A running flow's
    process beats (flows.db.heartbeat); a run from another host whose last beat is older than
    ledger.STALE_AFTER is marked abandoned by the next run, one that beat recently is left alone."""
    import time
    from datetime import timedelta

    from archive_db.types import utcnow
    from flows.db import ensure_schema, heartbeat, sessions_for

    ensure_schema(db_url)
    with sessions_for(db_url).begin() as s:
        coll = ledger.get_or_create_collection(s, "letters").id
        mine = ledger.start_run(s, "restore", {}, "test", coll).id
    first = _timings(db_url, mine)["heartbeat"]
    with heartbeat(db_url, mine, every=0.05):
        time.sleep(0.5)
    assert _timings(db_url, mine)["heartbeat"] > first  # this process beat while the block ran

    def elsewhere(minutes_ago: float) -> int:
        with sessions_for(db_url).begin() as s:
            run = ledger.start_run(s, "restore", {}, "test", coll)
            when = (utcnow() - timedelta(minutes=minutes_ago)).isoformat()
            run.timings = {"host": "worker-7.elsewhere", "pid": 1, "heartbeat": when}
            return run.id

    silent, beating = elsewhere(ledger.STALE_AFTER.total_seconds() / 60 + 5), elsewhere(1)
    with sessions_for(db_url).begin() as s:
        ledger.start_run(s, "restore", {}, "test", coll)
    with sessions_for(db_url)() as s:
        gone = s.get(Run, silent)
        assert (
            gone.status == "abandoned" and "no heartbeat from worker-7.elsewhere" in gone.timings["abandoned"]
        )
        assert s.get(Run, beating).status == "running" and s.get(Run, mine).status == "running"


def _timings(url: str, run_id: int) -> dict:
    from flows.db import sessions_for

    with sessions_for(url)() as s:
        return dict(s.get(Run, run_id).timings)


def test_a_collection_and_an_agent_created_by_two_processes_at_once_are_one_row_each(db_url):
    """PostgreSQL: while one transaction has inserted collection "race" (not yet committed), a
    second one asks for it. The second waits on the unique index, then reads the row the first
    committed, where it used to fail with 'duplicate key value violates unique constraint'."""
    import threading

    from archive_db.engine import session_factory

    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's writer lock, taken at BEGIN by every flow, already serialises this")
    engine = make_engine(db_url)
    factory = session_factory(engine)
    got: dict[str, object] = {}

    def second() -> None:
        with factory() as s, s.begin():
            got["collection"] = ledger.get_or_create_collection(s, "race").id
            got["agent"] = ledger.get_or_create_agent(s, "software", "racer", "1").id

    with factory() as first:
        with first.begin():
            mine = (
                ledger.get_or_create_collection(first, "race").id,
                ledger.get_or_create_agent(first, "software", "racer", "1").id,
            )
            thread = threading.Thread(target=second)
            thread.start()
            thread.join(timeout=1.0)
            assert thread.is_alive(), "the second transaction should wait for the first to commit"
        thread.join(timeout=30)
    assert (got["collection"], got["agent"]) == mine
    engine.dispose()


def test_migration_0004_rewrites_old_cli_promotion_events_in_the_one_vocabulary(db_url, tmp_path, request):
    """A catalogue at 0003 holding `archive promote`'s and `archive rollback`'s old events: after the
    upgrade they read like the web catalogue's (event on the version made current, naming the version
    replaced), so a rollback can follow them; the downgrade writes them back as they were."""
    from alembic import command

    from archive_db.migrate import alembic_config
    from tests.services import new_pg_database

    postgres = db_url.startswith("postgresql")  # the fixture's catalogue is at head: start an empty one
    url = (
        new_pg_database(request.getfixturevalue("pg_server")) if postgres else f"sqlite:///{tmp_path}/old.db"
    )
    engine = make_engine(url)
    upgrade(engine, "0003")
    factory = session_factory(engine)
    with factory() as s, s.begin():
        coll = ledger.get_or_create_collection(s, "c")
        item = _item(coll.id, "a.png", "a" * 64)
        s.add(item)
        s.flush()
        v = [
            Derivative(
                item_id=item.id,
                kind="restored",
                version=n,
                recipe_hash=f"{n}" * 64,
                storage_uri=f"x/v{n}",
                sha256=f"{n}" * 64,
                size=1,
                is_current=n == 1,
            )
            for n in (1, 2)
        ]
        s.add_all(v)
        s.flush()
        agent = ledger.get_or_create_agent(s, "model", "restore-unet", "v2")
        ledger.add_event(
            s,
            "promotion",
            agent,
            detail={"to_version": 2, "from_version": 1, "from_derivative_id": v[0].id},
            item_id=item.id,
            derivative_id=v[1].id,
        )
        ledger.add_event(
            s,
            "rollback",
            agent,
            detail={"from_version": 2, "to_version": 1, "to_derivative_id": v[0].id},
            item_id=item.id,
            derivative_id=v[1].id,
        )
        ids = [v[0].id, v[1].id]

    def moves() -> list[tuple[str, int, dict]]:
        with factory() as s:
            rows = s.scalars(
                select(Event).where(Event.type.in_(["promotion", "rollback"])).order_by(Event.id)
            )
            return [(e.type, e.derivative_id, e.detail) for e in rows]

    before = moves()
    upgrade(engine)
    assert moves() == [
        (
            "promotion",
            ids[1],
            {"kind": "restored", "version": 2, "note": "", "replaced": ids[0], "replaced_version": 1},
        ),
        (
            "rollback",
            ids[0],
            {"kind": "restored", "version": 1, "note": "", "replaced": ids[1], "replaced_version": 2},
        ),
    ]
    with factory() as s:
        assert curation.replaced_by(s, s.get(Derivative, ids[1])).id == ids[0]
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    assert moves() == before
    engine.dispose()


def test_migration_0006_lets_a_model_version_enlarge_on_a_catalogue_in_use(db_url, tmp_path, request):
    """A catalogue at 0005 whose restore model version a derivative refers to: after the upgrade an
    upscale model version can be registered (SQLite's CHECK is rewritten in place: its foreign keys
    would refuse a rebuilt table); the downgrade refuses while one is registered, and once it is
    gone, the old CHECK refuses the task again."""
    from alembic import command

    from archive_db.migrate import alembic_config
    from archive_db.models import ModelVersion
    from tests.services import new_pg_database

    postgres = db_url.startswith("postgresql")
    url = (
        new_pg_database(request.getfixturevalue("pg_server")) if postgres else f"sqlite:///{tmp_path}/old.db"
    )
    engine = make_engine(url)
    upgrade(engine, "0005")
    factory = session_factory(engine)

    def model(task: str, name: str) -> ModelVersion:
        return ModelVersion(
            name=name,
            version="v1",
            task=task,
            architecture="srvgg_compact" if task == "upscale" else "unet_restorer",
            config={},
            weights_uri="x",
            weights_sha256="0" * 64,
            status="production",
        )

    with factory() as s, s.begin():
        coll = ledger.get_or_create_collection(s, "c")
        item = _item(coll.id, "a.png", "a" * 64)
        restorer = model("restore", "restore-unet")
        s.add_all([item, restorer])
        s.flush()
        s.add(
            Derivative(
                item_id=item.id,
                kind="restored",
                version=1,
                recipe_hash="1" * 64,
                storage_uri="x/v1",
                sha256="1" * 64,
                size=1,
                is_current=True,
                model_version_id=restorer.id,
            )
        )
    with pytest.raises(IntegrityError), factory() as s, s.begin():
        s.add(model("upscale", "enlarge-x2"))
    upgrade(engine)
    with factory() as s, s.begin():
        s.add(model("upscale", "enlarge-x2"))
    with factory() as s:
        assert s.scalar(select(Derivative.model_version_id)) is not None  # the restorer's rows kept
    cfg = alembic_config(url)
    with pytest.raises(RuntimeError, match="upscale model version"), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    with factory() as s, s.begin():
        s.delete(s.scalars(select(ModelVersion).where(ModelVersion.task == "upscale")).one())
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    with pytest.raises(IntegrityError), factory() as s, s.begin():
        s.add(model("upscale", "enlarge-x2"))
    engine.dispose()
