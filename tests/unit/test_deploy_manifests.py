"""The KubeRay manifests under deploy/kuberay: well-formed, consistent with each other and with
what tickwise reads from its environment, and free of anything that looks like a real secret."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tickwise.cli import main
from tickwise.venues.credentials import MASTER_KEY_ENV, MasterKey
from tickwise.web.dashboard import TOKEN_ENV

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kuberay"
EXAMPLE = "secrets.example.yaml"
PLACEHOLDER = "CHANGE-ME"
# What a leaked credential tends to look like: a password inside a URL, or a long run of
# base64/url-safe characters mixing upper case, lower case and digits.
PASSWORD_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
TOKEN_LIKE = re.compile(r"[A-Za-z0-9+/_-]{20,}={0,2}")
SECRET_NAME = re.compile(r"KEY|TOKEN|PASSWORD|SECRET", re.IGNORECASE)


def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every YAML file under deploy/kuberay by file name, as its list of documents."""
    found = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        with path.open(encoding="utf-8") as f:
            found[path.name] = [doc for doc in yaml.safe_load_all(f) if doc is not None]
    return found


def only(kind: str) -> dict[str, Any]:
    """The one document of `kind` among all the manifests."""
    docs = [d for ds in manifests().values() for d in ds if d["kind"] == kind]
    assert len(docs) == 1, f"expected one {kind}, found {len(docs)}"
    return docs[0]


def walk(node: Any) -> Iterator[Any]:
    """Every mapping, list and scalar in a document, depth first."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from walk(child)


def example_secrets() -> dict[str, dict[str, str]]:
    """The example Secrets: name -> their keys and placeholder values."""
    return {
        d["metadata"]["name"]: {**d.get("stringData", {}), **d.get("data", {})}
        for d in manifests()[EXAMPLE]
        if d["kind"] == "Secret"
    }


def pod_templates(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A RayCluster spec's pod templates: the head's and each worker group's, by group."""
    groups = {"head": spec["headGroupSpec"]["template"]}
    for group in spec.get("workerGroupSpecs", []):
        groups[group["groupName"]] = group["template"]
    return groups


def ray_container(template: dict[str, Any]) -> dict[str, Any]:
    """The Ray container of a pod template (KubeRay's convention: the first one)."""
    return template["spec"]["containers"][0]


def run_options() -> str:
    """`tickwise run --help`: the options the command accepts and their choices."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["run", "--help"])
    return out.getvalue()


def test_every_manifest_parses_into_named_kubernetes_objects() -> None:
    found = manifests()

    assert {"raycluster.yaml", "rayjob.yaml", "postgres.yaml", "redis.yaml", EXAMPLE} <= set(found)
    for name, docs in found.items():
        assert docs, f"{name} holds no document"
        for doc in docs:
            assert isinstance(doc, dict), f"{name}: a document is not a mapping"
            assert doc.get("apiVersion") and doc.get("kind"), f"{name}: {doc!r:.80}"
            assert doc.get("metadata", {}).get("name"), f"{name}: a {doc['kind']} has no name"


def test_ray_cluster_has_a_working_head_and_a_gpu_worker_group() -> None:
    cluster = only("RayCluster")
    spec = cluster["spec"]

    assert cluster["apiVersion"] == "ray.io/v1"
    head = spec["headGroupSpec"]
    # The driver runs on the head: it must not be a zero-CPU node.
    assert float(head["rayStartParams"]["num-cpus"]) > 0
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    gpu = [
        g
        for g in groups.values()
        if "nvidia.com/gpu" in ray_container(g["template"])["resources"].get("limits", {})
    ]
    assert len(gpu) == 1
    assert gpu[0]["rayStartParams"]["num-gpus"] == "1"
    assert int(ray_container(gpu[0]["template"])["resources"]["limits"]["nvidia.com/gpu"]) == 1
    for group in groups.values():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    cpu_only = [g for g in groups.values() if g not in gpu]
    assert cpu_only, "no CPU worker group"


def test_every_ray_pod_gets_the_environment_tickwise_reads() -> None:
    # Routers open credentials with the master key, and every actor opens the store, on
    # whichever pod Ray placed it: every pod needs the same environment.
    for kind in ("RayCluster", "RayJob"):
        doc = only(kind)
        spec = doc["spec"] if kind == "RayCluster" else doc["spec"]["rayClusterSpec"]
        envs = {
            group: {e["name"]: e for e in ray_container(t).get("env", [])}
            for group, t in pod_templates(spec).items()
        }

        for group, env in envs.items():
            assert {MASTER_KEY_ENV, TOKEN_ENV, "PGPASSWORD", "TICKWISE_STORE_URL"} <= set(env), (
                f"{kind} {group}"
            )
        assert len({repr(sorted(env.items())) for env in envs.values()}) == 1, kind


def test_every_secret_reference_names_a_secret_and_key_of_the_example() -> None:
    secrets = example_secrets()
    used: set[str] = set()

    for name, docs in manifests().items():
        for doc in docs:
            for node in walk(doc):
                if not isinstance(node, dict):
                    continue
                if "secretKeyRef" in node:
                    ref = node["secretKeyRef"]
                    assert ref["name"] in secrets, f"{name}: unknown Secret {ref['name']}"
                    assert ref["key"] in secrets[ref["name"]], f"{name}: {ref}"
                    used.add(ref["name"])
                if "secretRef" in node:
                    assert node["secretRef"]["name"] in secrets, f"{name}: {node}"
                    used.add(node["secretRef"]["name"])

    assert used == set(secrets), f"example Secrets nobody reads: {set(secrets) - used}"


def test_secret_like_environment_comes_only_from_secrets() -> None:
    for name, docs in manifests().items():
        for doc in docs:
            for node in walk(doc):
                literal = isinstance(node, dict) and "name" in node and "value" in node
                if literal and SECRET_NAME.search(str(node["name"])):
                    pytest.fail(f"{name}: {node['name']} has a literal value")


def test_no_manifest_holds_anything_that_looks_like_a_real_secret() -> None:
    for name, docs in manifests().items():
        if name != EXAMPLE:
            assert not [d for d in docs if d["kind"] == "Secret"], f"{name} defines a Secret"
        for doc in docs:
            for node in walk(doc):
                if not isinstance(node, str) or PLACEHOLDER in node:
                    continue
                assert not PASSWORD_IN_URL.search(node), f"{name}: password in {node!r}"
                for token in TOKEN_LIKE.findall(node):
                    mixed = all(re.search(c, token) for c in ("[a-z]", "[A-Z]", "[0-9]"))
                    assert not mixed, f"{name}: {token!r} looks like a credential"


def test_example_secrets_hold_only_placeholders() -> None:
    for secret, values in example_secrets().items():
        for key, value in values.items():
            is_placeholder = PLACEHOLDER in value
            is_bare_url = value.startswith("postgresql://") and not PASSWORD_IN_URL.search(value)
            assert is_placeholder or is_bare_url, f"{secret}.{key} is not a placeholder"


def test_example_explains_how_to_make_the_real_secrets() -> None:
    text = (DEPLOY / EXAMPLE).read_text(encoding="utf-8")

    assert "MasterKey.generate().to_base64()" in text
    assert "secrets.token_urlsafe(32)" in text
    # The documented command makes a key the engine accepts.
    assert MasterKey.from_base64(MasterKey.generate().to_base64()) is not None


def test_ray_job_runs_tickwise_with_options_the_command_accepts() -> None:
    job = only("RayJob")
    argv = shlex.split(job["spec"]["entrypoint"])
    help_text = run_options()

    assert argv[:2] == ["tickwise", "run"]
    for i, arg in enumerate(argv[2:], start=2):
        if not arg.startswith("--"):
            continue
        assert re.search(rf"(?m)^\s+{re.escape(arg)}\b", help_text), f"unknown option {arg}"
        choices = re.search(rf"{re.escape(arg)} \{{([^}}]*)\}}", help_text)
        if choices:
            assert argv[i + 1] in choices.group(1).split(","), f"{arg} {argv[i + 1]}"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    assert job["spec"]["ttlSecondsAfterFinished"] > 0


def test_ray_job_entrypoint_reads_only_variables_the_head_defines() -> None:
    job = only("RayJob")
    head = ray_container(job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"])
    defined = {e["name"] for e in head["env"]}

    used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", job["spec"]["entrypoint"]))

    assert used, "the store URL should come from the environment"
    assert used <= defined


def test_ray_job_cluster_is_the_ray_cluster_without_gcs_fault_tolerance() -> None:
    cluster = dict(only("RayCluster")["spec"])
    job_cluster = only("RayJob")["spec"]["rayClusterSpec"]

    assert cluster.pop("gcsFaultToleranceOptions")
    assert job_cluster == cluster


def test_images_run_the_ray_version_the_manifests_declare() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    built = re.search(r"(?m)^ARG RAY_VERSION=(\S+)$", dockerfile)

    assert built is not None
    assert only("RayCluster")["spec"]["rayVersion"] == built.group(1)
    assert only("RayJob")["spec"]["rayClusterSpec"]["rayVersion"] == built.group(1)


def service_ports(file: str) -> dict[str, set[int]]:
    """The Services a manifest defines: name -> ports."""
    return {
        d["metadata"]["name"]: {p["port"] for p in d["spec"]["ports"]}
        for d in manifests()[file]
        if d["kind"] == "Service"
    }


def test_gcs_and_store_addresses_point_at_the_services_defined_beside_them() -> None:
    redis = only("RayCluster")["spec"]["gcsFaultToleranceOptions"]["redisAddress"]
    store = example_secrets()["tickwise-store"]["url"]

    redis_host, redis_port = redis.removeprefix("redis://").split(":")
    store_where = re.match(r"postgresql://[^@/]+@([^:/]+):(\d+)/", store)

    assert int(redis_port) in service_ports("redis.yaml")[redis_host]
    assert store_where is not None
    assert int(store_where.group(2)) in service_ports("postgres.yaml")[store_where.group(1)]
