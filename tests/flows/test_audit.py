"""The fixity audit flow and its CLI exit status."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from archive_db.models import Event, Run
from flows.audit import fixity_audit
from flows.cli.main import main
from flows.db import sessions_for
from flows.errors import NotFound
from flows.ingest import ingest_collection
from flows.storage.store import open_store
from tests import samples

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_audit_passes_then_finds_changed_and_missing_masters(settings, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name, data in {
        "a.jpg": samples.jpeg(),
        "b.jpg": samples.jpeg((90, 90)),
        "c.png": samples.png(),
        "bad.jpg": b"not an image",
    }.items():
        (inbox / name).write_bytes(data)
    ingest_collection(str(inbox), "fix", settings)

    clean = fixity_audit("fix", settings)
    assert (clean.checked, clean.ok, clean.failed) == (4, 4, 0)  # quarantined masters are audited too

    (inbox / "b.jpg").write_bytes(samples.jpeg((91, 90)))  # bit rot, or someone edited a master
    (inbox / "c.png").unlink()
    audit = fixity_audit("fix", settings)
    assert (audit.checked, audit.ok, audit.mismatch, audit.missing) == (4, 2, 1, 1)
    assert {(c.key, c.status) for c in audit.failures} == {("b.jpg", "mismatch"), ("c.png", "missing")}
    with sessions_for(settings.db.url)() as s:
        events = s.scalars(
            select(Event).where(Event.type == "fixity check", Event.run_id == audit.run_id)
        ).all()
        assert sorted(e.outcome for e in events) == ["failure", "failure", "success", "success"]
        run = s.get(Run, audit.run_id)
        assert run.flow == "fixity-audit" and run.counts["mismatch"] == 1 and run.status == "completed"


def test_audit_of_s3_masters(settings, bucket, s3_settings):
    settings.store = s3_settings.model_copy(update={"output": f"s3://{bucket}/out"})
    source = open_store(f"s3://{bucket}/in", s3_settings)
    source.put("a.jpg", samples.jpeg())
    source.put("b.jpg", samples.jpeg((80, 80)))
    ingest_collection(source.uri, "s3fix", settings)
    source.put("b.jpg", b"overwritten")
    audit = fixity_audit("s3fix", settings)
    assert (audit.ok, audit.mismatch) == (1, 1)


def test_audit_of_unknown_collection_is_a_clear_error(settings):
    with pytest.raises(NotFound, match="no collection named 'nope'"):
        fixity_audit("nope", settings)


def test_cli_audit_exits_non_zero_on_failure(settings, tmp_path, capsys):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.jpg").write_bytes(samples.jpeg())
    base = ["--db", settings.db.url, "--output", settings.store.output]
    assert main([*base, "ingest", str(inbox), "--collection", "cli"]) == 0
    assert main([*base, "audit", "--collection", "cli"]) == 0
    assert "all 1 masters match" in capsys.readouterr().out
    (inbox / "a.jpg").write_bytes(b"changed")
    assert main([*base, "audit", "--collection", "cli"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "mismatch" in out and "a.jpg" in out


def test_audit_checks_every_recorded_derivative_and_finds_unrecorded_version_folders(
    settings, tmp_path, monkeypatch, capsys
):
    """A restored version whose file changed or went, and a version folder no row records, are
    each a failure with its event (on the derivative where there is one) and exit status 1."""
    import json

    from archive_db.models import Derivative
    from flows.model_versions import register
    from flows.restore import restore_collection
    from tests.flows.test_restore import checkpoint

    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    register(settings, checkpoint(tmp_path, "v1", 1), status="production")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name, data in {
        "a.png": samples.png(),
        "b.jpg": samples.jpeg((90, 90)),
        "c.jpg": samples.jpeg(),
    }.items():
        (inbox / name).write_bytes(data)
    ingest_collection(str(inbox), "fix", settings)
    assert restore_collection("fix", settings=settings).restored == 3
    clean = fixity_audit("fix", settings)
    assert (clean.checked, clean.derivatives, clean.failed) == (6, 3, 0)

    output = open_store(settings.store.output, settings.store)
    with sessions_for(settings.db.url)() as s:
        rows = s.scalars(select(Derivative).order_by(Derivative.id)).all()
    keys = [d.storage_uri.removeprefix(output.uri + "/") for d in rows]
    output.put(keys[0], b"bit rot")  # (a test may; the pipeline never rewrites a recorded file)
    output.delete(keys[1])
    output.put(f"derivatives/fix/{rows[2].item_id}/restored/v7/image.png", b"left by a killed run")
    assert (
        main(["--db", settings.db.url, "--output", settings.store.output, "audit", "--collection", "fix"])
        == 1
    )
    printed = capsys.readouterr().out
    assert (
        "unrecorded version folders" in printed
        and f"derivatives/fix/{rows[2].item_id}/restored/v7" in printed
    )
    with sessions_for(settings.db.url)() as s:
        run = s.scalars(select(Run).where(Run.flow == "fixity-audit").order_by(Run.id.desc())).first()
        events = s.scalars(select(Event).where(Event.run_id == run.id, Event.outcome == "failure")).all()
    assert (run.counts["mismatch"], run.counts["missing"], run.counts["orphan"]) == (1, 1, 1)
    by_status = {e.detail["status"]: e for e in events}
    assert (
        by_status["mismatch"].derivative_id == rows[0].id and by_status["missing"].derivative_id == rows[1].id
    )
    assert by_status["orphan"].item_id == rows[2].item_id and by_status["orphan"].derivative_id is None
    assert json.dumps(by_status["orphan"].detail)
