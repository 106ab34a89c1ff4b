"""bench/gpu_check.py, the script a lent GPU machine runs, runs on a CPU too, so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_check_runs_every_section_on_a_cpu_in_under_two_minutes(tmp_path):
    # every shipped model's parity is measured, so the run grows by about 3 s a restorer version
    # (54 s with the twenty shipped now, on 2 cores): the limit leaves room for the next few
    out = tmp_path / "check.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gpu_check.py"),
            "--device",
            "cpu",
            "--small",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # as on the device machine: nothing but the script's own imports
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    rows = results["rows"]
    assert set(results["sections"]) >= {"parity", "tiles", "jpeg", "speed", "train"}
    assert not [r for r in rows if r["status"] in ("FAILED", "DIVERGED")]
    shipped = json.loads((ROOT / "restoration" / "weights" / "shipped.json").read_text())
    for model in shipped:  # every shipped model's bf16 parity is measured, with a PSNR
        psnr = [
            r
            for r in rows
            if r["section"] == "parity"
            and model in r["item"]
            and "bfloat16" in r["item"]
            and r["unit"] == "dB"
        ]
        assert len(psnr) == 1 and psnr[0]["value"] > 30, model
    speeds = {r["item"]: r["value"] for r in rows if r["unit"] == "MP/s"}
    assert any("null model" in k for k in speeds) and any("engine, " in k for k in speeds)
    assert any(
        "tone=auto (a fit and a run per picture)" in k for k in speeds
    )  # the production restorer as run
    assert all(isinstance(v, float) and v > 0 for v in speeds.values())
    assert any(r["item"].startswith("loss on cpu / on cpu") for r in rows)
    assert "section" in done.stdout.splitlines()[-len(rows) - 3]  # the table comes last
