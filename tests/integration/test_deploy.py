"""The deploy/ files, which cannot run here (Docker, Kubernetes): they parse, their entrypoints
import as Prefect flows, their images copy files that exist, and their names agree with the code."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from prefect import Flow

from flows.settings import RestoreSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def prefect_yaml() -> dict:
    return yaml.safe_load((DEPLOY / "prefect.yaml").read_text())


def test_deployments_name_importable_flows_on_the_right_pools(prefect_yaml):
    from prefect.client.schemas.schedules import CronSchedule

    deployments = {d["name"]: d for d in prefect_yaml["deployments"]}
    assert set(deployments) == {
        "ingest",
        "restore-collection",
        "restore-batch",
        "stylize-collection",
        "upscale-collection",
        "reprocess",
        "fixity-audit",
        "train-stage",
    }
    flow_names = {}
    for name, d in deployments.items():
        path, func = d["entrypoint"].split(":")
        assert (ROOT / path).is_file(), d["entrypoint"]
        obj = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), func)
        assert isinstance(obj, Flow), f"{d['entrypoint']} is not a Prefect flow"
        flow_names[name] = obj.name
        for schedule in d.get("schedules", []):
            CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))  # raises if invalid
        for param in d.get("parameters", {}):
            assert param in obj.parameters.properties, f"{name}: {obj.name} has no parameter {param!r}"
    # restore-collection sends batches to the deployment the settings name, on the GPU pool
    assert f"{flow_names['restore-batch']}/restore-batch" == RestoreSettings().deployment
    assert deployments["restore-batch"]["work_pool"]["name"] == "gpu"
    assert deployments["restore-collection"]["parameters"]["pool"] == "gpu"
    assert deployments["ingest"]["schedules"] and deployments["fixity-audit"]["schedules"]
    assert deployments["train-stage"]["work_pool"]["name"] == "gpu"  # training is schedulable like any flow


@pytest.mark.parametrize(
    "dockerfile, pool", [("worker-cpu.Dockerfile", "cpu"), ("worker-gpu.Dockerfile", "gpu")]
)
def test_worker_images_copy_files_that_exist_and_serve_their_pool(dockerfile, pool, prefect_yaml):
    text = (DEPLOY / dockerfile).read_text()
    copies = re.findall(r"^COPY\s+(.+?)\s+\S+\s*$", text, flags=re.M)
    assert copies
    for sources in copies:
        for src in sources.split():
            assert (ROOT / src).exists(), f"{dockerfile} copies {src}, which is not in the repository"
    assert "-c constraints.txt" in text  # the same pins as the build machines
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])\s*$", text, flags=re.M).group(1))
    assert cmd[:3] == ["prefect", "worker", "start"] and cmd[cmd.index("--pool") + 1] == pool
    pools = {d["work_pool"]["name"] for d in prefect_yaml["deployments"]}
    assert pool in pools


def test_compose_stack_has_every_part_and_builds_from_files_that_exist():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "minio", "prefect-server", "cpu-worker", "gpu-worker"} <= set(services)
    for name, service in services.items():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"
    gpu = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    env = services["cpu-worker"]["environment"]
    assert env["ARCHIVE_DB__URL"].startswith("postgresql+psycopg://") and env["ARCHIVE_STORE__ENDPOINT_URL"]
    catalogue = services[
        "catalogue"
    ]  # the web catalogue runs `archive serve` from an image with the web extra
    assert catalogue["command"][:2] == ["archive", "serve"] and catalogue["environment"]["ARCHIVE_WEB__TOKEN"]
    assert "web" in (DEPLOY.parent / catalogue["build"]["dockerfile"]).read_text().split("pip install")[-1]


def test_kubernetes_gpu_job_template_asks_for_one_gpu():
    template = json.loads((DEPLOY / "k8s" / "gpu-base-job-template.json").read_text())
    manifest = template["job_configuration"]["job_manifest"]
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    placeholders = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(template["job_configuration"])))
    assert placeholders <= set(template["variables"]["properties"])  # every placeholder is a variable
