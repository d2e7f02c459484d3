"""deploy/ checked with what runs here: the compose file against the Compose specification's
schema, the Kubernetes manifests against Kubernetes' own schemas (strict: an unknown field is an
error), the Helm values' run queue against the one `make ui` and `make stack` use, and every CC_*
variable the files set against the settings class. Not run here (no Docker engine, no cluster, no
Helm): building the image, `docker compose up`, `helm template` with the chart's own schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from resources.dagster_home import instance_config
from resources.settings import Settings, variables

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = "1.31"


def test_the_compose_file_follows_the_compose_specification():
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(DEPLOY / "compose.yaml")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_file_runs_every_part_and_waits_for_what_each_needs():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"postgres", "redis", "minio", "code-server", "dagster-daemon", "dagster-webserver",
                             "sidecar"}
    assert services["sidecar"]["deploy"]["replicas"] == 2
    for name in ("dagster-daemon", "dagster-webserver"):
        assert services[name]["depends_on"]["code-server"]["condition"] == "service_healthy"
        workspace = services[name]["command"][services[name]["command"].index("-w") + 1]
        assert workspace == "/app/deploy/workspace.compose.yaml"
    location = yaml.safe_load((DEPLOY / "workspace.compose.yaml").read_text())["load_from"][0]["grpc_server"]
    assert (location["host"], location["port"]) == ("code-server", 4266)
    assert "4266" in services["code-server"]["command"]


@pytest.mark.parametrize("path", sorted((DEPLOY / "k8s").glob("*.yaml")), ids=lambda p: p.name)
def test_the_manifests_follow_the_kubernetes_schemas(path):
    resources = [r for r in yaml.safe_load_all(path.read_text()) if r]
    assert resources
    for resource in resources:
        kubernetes_validate.validate(resource, KUBERNETES, strict=True)


def test_a_manifest_with_a_typo_is_refused():
    deployment = next(yaml.safe_load_all((DEPLOY / "k8s" / "sidecar.yaml").read_text()))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/healthz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_the_sidecar_is_probed_on_healthz_and_reads_its_secrets_from_a_secret():
    deployment = next(yaml.safe_load_all((DEPLOY / "k8s" / "sidecar.yaml").read_text()))
    assert deployment["spec"]["replicas"] >= 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    secret = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert secret >= {"CC_REDIS_URL", "CC_PG_URL", "CC_JWT_SECRET"}
    assert not [e for e in container["env"] if e["name"] in secret and "value" in e]


def test_the_helm_values_queue_runs_as_the_instance_config_does():
    values = yaml.safe_load((DEPLOY / "helm" / "dagster-values.yaml").read_text())
    ours = yaml.safe_load(instance_config(Settings.from_env({})))
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == ours["concurrency"]["runs"]["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == ours["concurrency"]["runs"]["tag_concurrency_limits"]
    retries = values["dagsterDaemon"]["runRetries"]
    assert (retries["maxRetries"], retries["retryOnAssetOrOpFailure"]) == (
        ours["run_retries"]["max_retries"], ours["run_retries"]["retry_on_asset_or_op_failure"])
    assert values["additionalInstanceConfig"]["concurrency"]["pools"] == ours["concurrency"]["pools"]
    assert values["dagster-user-deployments"]["deployments"][0]["dagsterApiGrpcArgs"] == ["-m", "cc_assets.definitions"]


def test_the_compose_dagster_yaml_is_the_one_the_settings_write():
    assert (DEPLOY / "dagster.yaml").read_text() == instance_config(
        Settings.from_env({"CC_DAGSTER_PG_URL": "postgresql://set-in-the-environment"}))


def test_every_variable_the_deploy_files_set_is_a_setting():
    known = set(variables())
    named = set()
    for path in DEPLOY.rglob("*.yaml"):
        text = path.read_text()
        named |= set(re.findall(r"\b(CC_[A-Z0-9_]+)\s*:", text))  # compose keys
        named |= set(re.findall(r"name: (CC_[A-Z0-9_]+)", text))  # Kubernetes env names
    # The compose file's own inputs, not settings: the database password and the S3 keys it composes URLs from.
    named -= {"CC_PG_PASSWORD", "CC_S3_ACCESS_KEY", "CC_S3_SECRET_KEY"}
    assert named and named <= known, sorted(named - known)


def test_sidecar_replicas_land_in_postgres_and_share_no_writable_volume():
    """Replicas on any node: the landing comes from the secret (`CC_LANDING_URL`), the pod's own
    data dir is its own, and the shared volume (Dagster's lake) is mounted read only."""
    deployment = next(yaml.safe_load_all((DEPLOY / "k8s" / "sidecar.yaml").read_text()))
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    landing = next(e for e in container["env"] if e["name"] == "CC_LANDING_URL")
    assert landing["valueFrom"]["secretKeyRef"] == {"name": "command-center", "key": "CC_LANDING_URL"}
    claims = {v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    shared = [m for m in container["volumeMounts"] if m["name"] in claims]
    assert shared and all(m.get("readOnly") for m in shared)
    data_dir = next(e["value"] for e in container["env"] if e["name"] == "CC_DATA_DIR")
    assert next(m for m in container["volumeMounts"] if m["mountPath"] == data_dir)["name"] not in claims


def test_the_compose_replicas_and_dagster_read_one_landing():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    urls = {name: service.get("environment", {}).get("CC_LANDING_URL") for name, service in compose["services"].items()
            if name in ("sidecar", "code-server", "dagster-daemon")}
    assert len(set(urls.values())) == 1 and next(iter(urls.values())).startswith("postgresql://"), urls
