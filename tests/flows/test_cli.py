"""The `archive` command: real processes for the error paths, in-process runs for the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from archive_db.migrate import head_revision
from flows.cli.main import main
from tests import samples
from tests.services import free_port

ARCHIVE = str(Path(sys.executable).parent / "archive")


def run_archive(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")} | (env or {})
    return subprocess.run(
        [ARCHIVE, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120
    )


def test_help_lists_the_commands():
    result = run_archive("--help")
    assert result.returncode == 0
    for command in ("ingest", "audit", "collections", "show", "db"):
        assert f"  {command}" in result.stdout


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["ingest"], {}, "Missing argument 'SOURCE'"),
        (["ingest", "/tmp"], {}, "Missing option '--collection'"),
        (["ingest", "{tmp}/nowhere", "-c", "x"], {}, "does not exist"),
        (["ingest", "{tmp}", "-c", "../etc"], {}, "invalid collection name"),
        (["ingest", "{tmp}", "-c", "x", "--batch-size", "0"], {}, "Invalid value for '--batch-size'"),
        (["ingest", "ftp://host/x", "-c", "x"], {}, "unsupported store URI"),
        (["frobnicate"], {}, "No such command 'frobnicate'"),
        (["show", "42"], {}, "no catalogue at"),
        (["collections"], {"ARCHIVE_INGEST__CONCURRENCY": "lots"}, "invalid setting ingest.concurrency"),
        (
            ["--endpoint-url", "http://127.0.0.1:{port}", "ingest", "s3://scans/inbox", "-c", "x"],
            {
                "ARCHIVE_STORE__MAX_ATTEMPTS": "1",
                "ARCHIVE_STORE__CONNECT_TIMEOUT_S": "1",
                "AWS_ACCESS_KEY_ID": "k",
                "AWS_SECRET_ACCESS_KEY": "s",
            },
            "cannot reach S3 endpoint",
        ),
    ],
)
def test_bad_input_prints_one_line_and_exits_non_zero(tmp_path, args, env, message):
    args = [a.format(tmp=tmp_path, port=free_port()) for a in args]
    result = run_archive("--db", f"sqlite:///{tmp_path}/c.db", *args, env=env, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.usefixtures("prefect_harness")
def test_ingest_collections_show_and_db_upgrade(settings, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/fresh.db"
    base = ["--db", db, "--output", settings.store.output]
    assert main([*base, "db", "upgrade"]) == 0
    assert f"revision {head_revision()} (head {head_revision()})" in capsys.readouterr().out

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "portrait.jpg").write_bytes(samples.exif_jpeg(orientation=6))
    (inbox / "copy.jpg").write_bytes(samples.exif_jpeg(orientation=6))
    (inbox / "broken.png").write_bytes(samples.truncated(samples.png()))
    assert main([*base, "ingest", str(inbox), "--collection", "family_album", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "quarantined broken.png: decoding failed" in out
    assert "Ingested 1 new item(s) into 'family_album'" in out

    assert main([*base, "ingest", str(inbox), "--collection", "family_album"]) == 0
    assert "Nothing to ingest: all 3 objects" in capsys.readouterr().out

    assert main([*base, "collections", "--json"]) == 0
    [coll] = json.loads(capsys.readouterr().out)
    assert (coll["name"], coll["items"], coll["quarantined"], coll["duplicates"]) == ("family_album", 2, 1, 1)
    assert main([*base, "collections"]) == 0
    assert "family_album" in capsys.readouterr().out

    assert main([*base, "show", "family_album/copy.jpg", "--json"]) == 0
    item = json.loads(capsys.readouterr().out)
    assert (item["width"], item["height"], item["orientation"], item["make"]) == (100, 200, 6, "Epson")
    # Keys are recorded in listing order, so copy.jpg is the item and portrait.jpg its duplicate.
    assert item["source_key"] == "copy.jpg"
    assert [d["key"] for d in item["duplicates"]] == ["portrait.jpg"]
    types = [e["type"] for e in item["events"]]
    assert types[:4] == ["ingestion", "message digest calculation", "validation", "metadata extraction"]

    assert main([*base, "show", item["sha256"][:12]]) == 0
    shown = capsys.readouterr().out
    assert "Perfection V850" in shown and "message digest calculation" in shown

    assert main([*base, "show", "999"]) == 1
    assert "no item matches '999'" in capsys.readouterr().err


def test_a_killed_command_does_not_leave_its_prefect_server_running(tmp_path):
    """SIGKILL an `archive` command while its in-process Prefect API server (a child process) runs:
    the server must not live on, reparented to PID 1, holding a port and memory."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def descendants(pid: int) -> list[int]:
        found, todo = [], [pid]
        while todo:
            parent = todo.pop()
            for task in os.listdir(f"/proc/{parent}/task") if os.path.isdir(f"/proc/{parent}/task") else []:
                try:
                    kids = [int(k) for k in open(f"/proc/{parent}/task/{task}/children").read().split()]
                except OSError:
                    kids = []
                found += [k for k in kids if k not in found]
                todo += kids
        return found

    def cmdline(pid: int) -> str:
        try:
            return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            return ""

    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "a.png").write_bytes(samples.png())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "ARCHIVE_WATCHDOG": "1",
        "PYTHONPATH": os.getcwd(),
    }
    command = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from flows.cli.main import main; sys.exit(main(sys.argv[1:]))",
            "--db",
            f"sqlite:///{tmp_path / 'c.db'}",
            "--output",
            str(tmp_path / "out"),
            "ingest",
            str(tmp_path / "inbox"),
            "--collection",
            "letters",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    servers: list[int] = []
    deadline = time.monotonic() + 180
    while not servers and command.poll() is None and time.monotonic() < deadline:
        servers = [p for p in descendants(command.pid) if "uvicorn" in cmdline(p) or "prefect" in cmdline(p)]
        time.sleep(0.1)
    assert servers, "the command should have started its own API server"
    time.sleep(2)  # the server has run a moment (the watchdog looks for children five times a second)
    command.send_signal(signal.SIGKILL)
    command.wait()
    deadline = time.monotonic() + 30
    while (
        any(
            os.path.exists(f"/proc/{p}") and "zombie" not in open(f"/proc/{p}/status").read().lower()
            for p in servers
        )
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    alive = [
        p
        for p in servers
        if os.path.exists(f"/proc/{p}") and "zombie" not in open(f"/proc/{p}/status").read().lower()
    ]
    assert not alive, [cmdline(p) for p in alive]
