"""The production deployment files agree with each other and with Dagster's own config schemas.

docker-compose.yml, Dockerfile, .env.example and deploy/ (dagster.yaml, workspace.yaml) are parsed
and cross-checked; nothing here needs Docker, PostgreSQL or a network.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import ConcurrencyConfig, dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.workspace.load import location_origins_from_yaml_paths
from dagster._serdes.config_class import ConfigurableClassData
from dagster_docker import DockerRunLauncher
from dagster_postgres import DagsterPostgresStorage

from ..support.compose_files import as_list, published_ports

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
DEPLOY = REPO / "deploy"
INSTANCE_YAML = DEPLOY / "dagster.yaml"
WORKSPACE_YAML = DEPLOY / "workspace.yaml"

CODE_LOCATION = "code-location"
LOCATION_NAME = "hyperion_pipelines"
EXPECTED_SERVICES = {
    "postgres",
    "etcd",
    "minio",
    "milvus",
    CODE_LOCATION,
    "webserver",
    "daemon",
    "pushgateway",
    "prometheus",
    "rabbitmq",
    "worker",
    "flower",
    "search-api",
}
# The `celery` profile: steps on worker containers (HYPERION_EXECUTOR=celery).
CELERY_PROFILE = {"rabbitmq", "worker", "flower"}
NEEDS_HEALTHCHECK = {"postgres", "etcd", "minio", "milvus", CODE_LOCATION, "rabbitmq", "worker", "flower", "search-api"}
STATEFUL = {
    "postgres": "/var/lib/postgresql/data",
    "etcd": "/etcd",
    "minio": "/minio_data",
    "milvus": "/var/lib/milvus",
    "rabbitmq": "/var/lib/rabbitmq",
}
HEALTHY_DEPENDENCIES = {
    "milvus": {"etcd", "minio"},
    CODE_LOCATION: {"postgres", "milvus"},
    "webserver": {"postgres", CODE_LOCATION},
    "daemon": {"postgres", CODE_LOCATION},
    "worker": {"rabbitmq", "postgres", "milvus"},
    "flower": {"rabbitmq"},
}
# What hyperion_pipelines/settings.py and the resources read; a run container needs every one.
PIPELINE_ENV = {
    "HYPERION_HOME",
    "HYPERION_UPLOADS_DIR",
    "HYPERION_BACKEND_URL",
    "HYPERION_MILVUS_URI",
    "HYPERION_EMBEDDER",
    "HYPERION_OPENAI_BASE_URL",
    "HYPERION_UI_URL",
    "HYPERION_PROMETHEUS_PUSHGATEWAY",
    "HYPERION_STATE_DB_URL",
    "HYPERION_BACKEND_TOKEN",
    "HYPERION_OPENAI_API_KEY",
    "HYPERION_MILVUS_TOKEN",
    "HYPERION_ALERT_WEBHOOK_URL",
    "HYPERION_EXECUTOR",
    "HYPERION_CELERY_BROKER",
    "HYPERION_CELERY_BACKEND",
}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|API_KEY|WEBHOOK|STATE_DB_URL")
# Compose interpolation: $$ (a literal $), ${NAME}, ${NAME:-default}, ${NAME:?error}, ..., $NAME.
COMPOSE_REF = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?[^}]*\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)
ENV_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
INFRA_PORTS = {5432, 2379, 2380, 9000, 9001}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def instance_config() -> dict[str, Any]:
    return load_yaml(INSTANCE_YAML)


@pytest.fixture(scope="module")
def launcher(instance_config: dict[str, Any]) -> dict[str, Any]:
    return instance_config["run_launcher"]["config"]


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE)


@pytest.fixture
def pg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables deploy/dagster.yaml reads through `env:`, as compose sets them."""
    for name, value in {
        "DAGSTER_PG_USERNAME": "hyperion",
        "DAGSTER_PG_PASSWORD": "secret",
        "DAGSTER_PG_HOST": "postgres",
        "DAGSTER_PG_DB": "hyperion",
        "DAGSTER_PG_PORT": "5432",
    }.items():
        monkeypatch.setenv(name, value)


def parse_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = ENV_LINE.match(line)
        assert match, f"{path.name}:{number} is not KEY=VALUE: {raw!r}"
        assert match["key"] not in values, f"{path.name}: {match['key']} defined twice"
        values[match["key"]] = match["value"].split(" #", 1)[0].strip()
    return values


def compose_references(text: str) -> dict[str, set[str]]:
    """Each variable docker-compose.yml interpolates, with the operators it is used with ('' = plain)."""
    refs: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in COMPOSE_REF.finditer(line):
            name = match["braced"] or match["bare"]
            if name:
                refs.setdefault(name, set()).add(match["op"] or "")
    return refs


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def env_keys(service: dict[str, Any], env_example: dict[str, str]) -> set[str]:
    """Variables a service's containers get: `environment`, plus `.env` when it is an env_file
    (.env is made from .env.example)."""
    keys = set(environment(service))
    for entry in as_list(service.get("env_file")):
        path = entry["path"] if isinstance(entry, dict) else entry
        assert Path(path).name == ".env", f"unexpected env_file {path}"
        keys |= set(env_example)
    return keys


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of each volume entry (short or long syntax)."""
    mounts = {}
    for entry in as_list(service.get("volumes")):
        if isinstance(entry, dict):
            mounts[entry["target"]] = entry.get("source", "")
        else:
            source, target = entry.split(":")[:2]
            mounts[target] = source
    return mounts


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    return [str(arg) for arg in command] if isinstance(command, list) else str(command or "").split()


def option(args: list[str], *names: str) -> str:
    for index, arg in enumerate(args[:-1]):
        if arg in names:
            return args[index + 1]
    raise AssertionError(f"none of {names} in {args}")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        current = ""
    return instructions


def validated(klass: type, config: dict[str, Any]) -> dict[str, Any]:
    result = process_config(klass.config_type(), config)
    assert result.success, [error.message for error in result.errors]
    return result.value


def validate_instance_dir(config_dir: Path) -> InstanceRef:
    """What DagsterInstance.get() does with $DAGSTER_HOME, short of connecting: the instance schema,
    then each configured class's own schema with its `env:` values resolved."""
    ref = InstanceRef.from_dir(str(config_dir))
    for data in (
        ref.storage_data,
        ref.run_launcher_data,
        ref.run_coordinator_data,
        ref.compute_logs_data,
        ref.local_artifact_storage_data,
    ):
        assert isinstance(data, ConfigurableClassData)
        klass = getattr(importlib.import_module(data.module_name), data.class_name)
        validated(klass, yaml.safe_load(data.config_yaml))
    return ref


# 1. services, health checks, volumes, dependencies


def test_compose_has_the_services_with_health_checks_volumes_and_healthy_dependencies(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert set(services) == EXPECTED_SERVICES
    for name in NEEDS_HEALTHCHECK:
        test = (services[name].get("healthcheck") or {}).get("test")
        assert test and not services[name]["healthcheck"].get("disable"), f"{name} has no health check"
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert "9091/healthz" in str(services["milvus"]["healthcheck"]["test"])
    assert command_args(services["milvus"])[-2:] == ["run", "standalone"]
    assert services["milvus"]["image"].startswith("milvusdb/milvus:v2.6.")

    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for target, source in volume_mounts(service).items():
            if not source.startswith(("/", ".")):
                assert source in declared, f"{name} mounts undeclared volume {source} at {target}"
    for name, target in STATEFUL.items():
        assert volume_mounts(services[name]).get(target) in declared, f"{name} keeps {target} in no named volume"

    for name, needed in HEALTHY_DEPENDENCIES.items():
        conditions = depends_on(services[name])
        for dependency in needed:
            assert conditions.get(dependency) == "service_healthy", f"{name} must wait for {dependency} healthy"
    for service in services.values():
        for dependency, condition in depends_on(service).items():
            assert dependency in services
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck"), f"{dependency} has no health check to wait for"

    for name, service in services.items():
        image = str(service["image"])
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{name}: unpinned image {image}"


def test_the_celery_profile_runs_steps_on_workers_of_the_code_location_image(
    services: dict[str, dict[str, Any]], launcher: dict[str, Any]
) -> None:
    """Off by default; when on, the workers run the same code, settings and data volume as the
    run containers, and the broker the executor submits to is the one the workers and Flower read."""
    for name, service in services.items():
        assert (service.get("profiles") == ["celery"]) == (name in CELERY_PROFILE), name
    worker, code_location = services["worker"], services[CODE_LOCATION]
    assert worker["image"] == services["flower"]["image"] == code_location["image"]
    assert command_args(worker)[:2] == ["hyperion", "worker"]
    assert environment(worker) == {k: v for k, v in environment(code_location).items() if k != "DAGSTER_CURRENT_IMAGE"}
    assert volume_mounts(worker) == volume_mounts(code_location)
    assert worker["deploy"]["replicas"] >= 2
    broker = environment(code_location)["HYPERION_CELERY_BROKER"]
    assert broker.startswith("pyamqp://") and "@rabbitmq:5672/" in broker
    assert environment(services["flower"])["HYPERION_CELERY_BROKER"] == broker
    rabbitmq = environment(services["rabbitmq"])
    assert broker == f"pyamqp://{rabbitmq['RABBITMQ_DEFAULT_USER']}:{rabbitmq['RABBITMQ_DEFAULT_PASS']}@rabbitmq:5672//"
    # Off unless asked for; the run containers get the executor setting from the daemon.
    assert environment(code_location)["HYPERION_EXECUTOR"] == "${HYPERION_EXECUTOR:-in_process}"
    assert {"HYPERION_EXECUTOR", "HYPERION_CELERY_BROKER"} <= set(launcher["env_vars"])


def test_the_search_api_serves_the_live_index_with_a_token_and_is_scraped(services: dict[str, dict[str, Any]]) -> None:
    """`hyperion serve` off this machine needs its token; the settings are the runs' own (the same
    Milvus, model and pipelines), and Prometheus scrapes its metrics."""
    api, code_location = services["search-api"], services[CODE_LOCATION]
    assert api["image"] == code_location["image"] and "profiles" not in api
    assert command_args(api)[:4] == ["hyperion", "serve", "--host", "0.0.0.0"]
    env = environment(api)
    assert env.pop("HYPERION_SERVE_TOKEN").startswith("${HYPERION_SERVE_TOKEN:?")
    assert env == {k: v for k, v in environment(code_location).items() if k != "DAGSTER_CURRENT_IMAGE"}
    assert "/healthz" in str(api["healthcheck"]["test"]) and depends_on(api)["milvus"] == "service_healthy"
    scraped = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())["scrape_configs"]
    assert {"job_name": "search-api", "static_configs": [{"targets": ["search-api:8080"]}]} in scraped


def test_dagster_services_share_the_code_location_image(services: dict[str, dict[str, Any]]) -> None:
    code_location = services[CODE_LOCATION]
    assert code_location["build"]["context"] == "."
    assert (REPO / code_location["build"].get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    image = code_location["image"]
    # Run containers start from the image the code server reports.
    assert environment(code_location)["DAGSTER_CURRENT_IMAGE"] == image
    assert services["webserver"]["image"] == services["daemon"]["image"] == image


# 2. network and data volume of the run launcher


def test_run_launcher_network_is_the_compose_network(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], launcher: dict[str, Any]
) -> None:
    by_name = {(spec or {}).get("name", key): key for key, spec in compose["networks"].items()}
    assert launcher["network"] in by_name, "the launcher's network must be a compose network's fixed `name:`"
    key = by_name[launcher["network"]]
    for name, service in services.items():
        assert key in as_list(service.get("networks")), f"{name} is not on the {key} network"


def test_run_containers_mount_the_code_location_data_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], launcher: dict[str, Any], instance_config: dict
) -> None:
    volumes = {(spec or {}).get("name"): key for key, spec in (compose.get("volumes") or {}).items()}
    mounts = [str(entry).split(":") for entry in launcher["container_kwargs"]["volumes"]]
    assert mounts
    code_location_mounts = volume_mounts(services[CODE_LOCATION])
    for source, target, *_ in mounts:
        assert source in volumes, f"{source} is no compose volume's fixed `name:`"
        assert code_location_mounts.get(target) == volumes[source], f"code-location does not mount {source} at {target}"
        assert volume_mounts(services["daemon"]).get(target) == volumes[source]
    data_dir = mounts[0][1]
    env = environment(services[CODE_LOCATION])
    assert env["HYPERION_HOME"] == data_dir
    assert env["HYPERION_UPLOADS_DIR"].startswith(data_dir + "/")
    # Step outputs and compute logs outlive each run's container.
    for key in ("local_artifact_storage", "compute_logs"):
        assert instance_config[key]["config"]["base_dir"].startswith(data_dir + "/")
    assert volume_mounts(services["webserver"]).get(data_dir) == volumes[mounts[0][0]]


# 3. every variable is defined


def test_every_compose_variable_is_in_env_example(env_example: dict[str, str]) -> None:
    refs = compose_references(COMPOSE.read_text(encoding="utf-8"))
    assert refs
    for name, ops in refs.items():
        assert name in env_example, f"${{{name}}} is used in docker-compose.yml but missing from .env.example"
        if ops - {":-", "-"}:  # no default: compose needs a value
            assert env_example[name], f"{name} has no default in docker-compose.yml and no value in .env.example"
    assert set(env_example) <= set(refs), f"unused in compose: {set(env_example) - set(refs)}"


def test_env_example_refers_only_to_variables_defined_above(env_example: dict[str, str]) -> None:
    seen: list[str] = []
    for key, value in env_example.items():
        for name in compose_references(value):
            assert name in seen, f"{key} refers to {name}, which is not defined above it"
        seen.append(key)


def test_compose_holds_no_secret_values(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}", value), f"{name}: {key}={value}"


def test_launcher_env_vars_are_set_where_runs_are_launched_and_served(
    services: dict[str, dict[str, Any]], launcher: dict[str, Any], env_example: dict[str, str]
) -> None:
    forwarded = set(launcher["env_vars"])
    assert all("=" not in name for name in forwarded), "values belong in .env, not in dagster.yaml"
    assert forwarded >= PIPELINE_ENV
    # DockerRunLauncher copies each named variable from the launching process (the daemon) and
    # fails the launch if one is unset; the code server runs sensors with the same settings.
    for name in (CODE_LOCATION, "daemon"):
        missing = forwarded - env_keys(services[name], env_example)
        assert not missing, f"{name} lacks {sorted(missing)}"
    assert {key: value for key, value in environment(services[CODE_LOCATION]).items() if key in forwarded} == {
        key: value for key, value in environment(services["daemon"]).items() if key in forwarded
    }


def test_instance_env_is_set_for_every_dagster_process(
    services: dict[str, dict[str, Any]], instance_config: dict[str, Any], launcher: dict[str, Any], env_example: dict
) -> None:
    def env_names(node: Any) -> set[str]:
        if isinstance(node, dict):
            if set(node) == {"env"}:
                return {node["env"]}
            return set().union(*(env_names(value) for value in node.values()))
        if isinstance(node, list):
            return set().union(*(env_names(value) for value in node))
        return set()

    needed = env_names(instance_config)
    assert {"DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB"} <= needed
    assert needed <= set(launcher["env_vars"]), "run containers load the same instance"
    for name in (CODE_LOCATION, "webserver", "daemon"):
        assert needed <= env_keys(services[name], env_example), name
    pg = environment(services["postgres"])
    daemon = environment(services["daemon"])
    assert daemon["DAGSTER_PG_HOST"] == "postgres"
    assert daemon["DAGSTER_PG_USERNAME"] == pg["POSTGRES_USER"]
    assert daemon["DAGSTER_PG_DB"] == pg["POSTGRES_DB"]
    assert daemon["DAGSTER_PG_PASSWORD"] == pg["POSTGRES_PASSWORD"]


# 4. workspace


def test_workspace_loads_the_grpc_code_server(services: dict[str, dict[str, Any]]) -> None:
    [origin] = location_origins_from_yaml_paths([str(WORKSPACE_YAML)])
    assert origin.location_name == LOCATION_NAME
    assert origin.host == CODE_LOCATION and CODE_LOCATION in services
    args = command_args(services[CODE_LOCATION])
    assert args[:3] == ["dagster", "code-server", "start"]
    assert option(args, "-h", "--host") == "0.0.0.0"
    assert int(option(args, "-p", "--port")) == origin.port
    assert option(args, "-m", "--module-name") == "hyperion_pipelines.definitions"
    assert option(args, "--location-name") == LOCATION_NAME
    assert "grpc-health-check" in services[CODE_LOCATION]["healthcheck"]["test"]

    workdir = [args for keyword, args in dockerfile_instructions() if keyword == "WORKDIR"][-1]
    for name, program in (("webserver", "dagster-webserver"), ("daemon", "dagster-daemon")):
        command = command_args(services[name])
        assert command[0] == program
        assert option(command, "-w", "--workspace") == f"{workdir}/deploy/workspace.yaml"


# 5. published ports


def test_published_ports_bind_localhost_only(services: dict[str, dict[str, Any]]) -> None:
    assert ("127.0.0.1", 3000) in published_ports(services["webserver"])
    for name, service in services.items():
        for host_ip, port in published_ports(service):
            assert host_ip == "127.0.0.1", f"{name} publishes {port} on all interfaces"
            assert port not in INFRA_PORTS, f"{name} publishes {port}"
    for name in ("postgres", "etcd", "minio"):
        assert not published_ports(services[name])


# 6. Dagster's own schemas


def test_instance_config_validates_with_dagster_schemas(pg_env: None) -> None:
    config, custom_class = dagster_instance_config(str(DEPLOY))
    assert custom_class is None
    ref = validate_instance_dir(DEPLOY)
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == ("dagster_postgres", "DagsterPostgresStorage")
    assert ref.run_storage_data.module_name == ref.event_storage_data.module_name == "dagster_postgres"
    assert ref.schedule_storage_data.class_name == "PostgresScheduleStorage"
    storage = validated(DagsterPostgresStorage, config["storage"]["postgres"])
    assert storage["postgres_db"] == {
        "username": "hyperion",
        "password": "secret",
        "hostname": "postgres",
        "db_name": "hyperion",
        "port": 5432,
        "params": {},
        "scheme": "postgresql+psycopg2",  # dagster-postgres needs psycopg2 under SQLAlchemy 2.1
    }
    validated(DockerRunLauncher, config["run_launcher"]["config"])
    # Neither constructor connects: the launcher's own checks (network vs networks, forbidden
    # container_kwargs) run, and the queue settings resolve as the daemon will see them.
    launcher = ref.run_launcher_data.rehydrate(as_type=DockerRunLauncher)
    assert launcher.networks == [config["run_launcher"]["config"]["network"]]
    coordinator = ref.run_coordinator_data.rehydrate(as_type=QueuedRunCoordinator)
    concurrency = ConcurrencyConfig.from_concurrency_settings(
        ref.settings["concurrency"], coordinator.get_run_queue_config()
    )
    queue = concurrency.run_queue_config
    assert queue is not None and queue.max_concurrent_runs > 1
    limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
    assert limits["dagster/partition"] == {
        "key": "dagster/partition",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    }
    assert limits["hyperion/heavy"]["limit"] < queue.max_concurrent_runs
    assert concurrency.pool_config.default_pool_limit >= 1
    assert ref.settings["run_monitoring"]["enabled"] is True
    assert ref.settings["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    assert ref.settings["telemetry"] == {"enabled": False}


def test_instance_config_needs_its_environment(pg_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_PG_HOST")
    with pytest.raises(AssertionError, match="DAGSTER_PG_HOST"):
        validate_instance_dir(DEPLOY)


@pytest.mark.parametrize(
    ("original", "broken"),
    [
        ("hostname:", "hostnme:"),  # instance schema (storage)
        ("max_concurrent_runs:", "max_concurent_runs:"),  # instance schema (run queue)
        ("network: hyperion", "netwrok: hyperion"),  # DockerRunLauncher's own schema
        ("class: DockerRunLauncher", "class: DockerLauncher"),  # no such class
    ],
)
def test_a_misspelt_instance_config_is_rejected(pg_env: None, tmp_path: Path, original: str, broken: str) -> None:
    text = INSTANCE_YAML.read_text(encoding="utf-8")
    assert text.count(original) == 1
    (tmp_path / "dagster.yaml").write_text(text.replace(original, broken), encoding="utf-8")
    with pytest.raises(Exception):  # noqa: B017 - schema errors, a failed assertion or a missing class
        validate_instance_dir(tmp_path)


# 7. Dockerfile and secrets files


def test_dockerfile_installs_cpu_torch_first_and_runs_as_non_root() -> None:
    """The rules of the file's order; what the built image holds (CPU torch, OCR, the onnx and
    celery extras, offline model loading, the production instance, a non-root user) is observed
    in its running container by deploy/smoke.py ("the code-location image as built")."""
    instructions = dockerfile_instructions()
    # The base is a build argument whose default is what users get (deploy/compose.local.yml builds
    # with a local one).
    assert instructions[0] == ("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm")
    assert instructions[1] == ("FROM", "${PYTHON_IMAGE}")
    runs = [(index, args) for index, (keyword, args) in enumerate(instructions) if keyword == "RUN"]
    torch = [index for index, args in runs if "pip install torch==" in args]
    package = [index for index, args in runs if re.search(r"pip install (\S+ )*'?\.(\[[a-z,]+\])?'?( |$)", args)]
    # Resolved from PyPI alone, torch pulls GBs of CUDA libraries: the CPU wheel goes in first.
    assert torch and package and torch[0] < package[0], "the CPU torch wheel must be installed before the package"
    users = [index for index, (keyword, _) in enumerate(instructions) if keyword == "USER"]
    assert users, "no USER"
    assert users[-1] > runs[-1][0], "a RUN after the last USER runs as that user; keep USER last"


def test_env_file_is_ignored_and_the_example_is_not() -> None:
    assert ENV_EXAMPLE.is_file()
    assert ".env" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    if shutil.which("git") and (REPO / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
        example = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=REPO, check=False)
        assert ignored.returncode == 0 and example.returncode == 1


# 8. the embedded default stays as it was


def test_embedded_default_is_untouched(instance_config: dict[str, Any]) -> None:
    workspace = load_yaml(REPO / "workspace.yaml")
    assert [list(entry) for entry in workspace["load_from"]] == [["python_module"]]
    assert workspace["load_from"][0]["python_module"]["module_name"] == "hyperion_pipelines.definitions"
    embedded = load_yaml(REPO / "dagster.yaml")
    for key in ("storage", "run_storage", "event_log_storage", "schedule_storage"):
        assert key not in embedded
    # One machine: run workers are local processes that run monitoring can watch.
    assert embedded["run_launcher"] == {
        "module": "hyperion_pipelines.instance.run_launcher",
        "class": "LocalRunLauncher",
    }
    # The production instance keeps the embedded guarantees.
    assert instance_config["run_retries"] == embedded["run_retries"]
    partition_limit = [
        limit
        for limit in embedded["concurrency"]["runs"]["tag_concurrency_limits"]
        if limit["key"] == "dagster/partition"
    ]
    assert partition_limit and partition_limit[0] in instance_config["concurrency"]["runs"]["tag_concurrency_limits"]


# 9. the local override (deploy/compose.local.yml, used by deploy/smoke.sh)


def test_the_local_override_replaces_images_only() -> None:
    """The override swaps what cannot be pulled here; settings, volumes, networks and the run
    launcher of the app services stay the production file's."""

    class Loader(yaml.SafeLoader):
        pass

    # Compose's `!reset` tag empties a merged key; read it as a marker.
    Loader.add_constructor("!reset", lambda loader, node: "!reset")
    override = yaml.load((DEPLOY / "compose.local.yml").read_text(encoding="utf-8"), Loader=Loader)["services"]
    production = load_yaml(COMPOSE)["services"]
    assert set(override) <= set(production)
    for name in (CODE_LOCATION, "webserver", "daemon"):
        extra = set(override.get(name, {})) - {"build"}
        assert not extra, f"{name}: the override changes {extra}"
    assert override[CODE_LOCATION]["build"] == {"args": {"PYTHON_IMAGE": "hyperion-local/python:3.11"}}
    for name, service in override.items():
        if "build" in service and name != CODE_LOCATION:
            assert (DEPLOY / "local" / service["build"]["dockerfile"]).is_file(), name
    assert override["etcd"] == {"profiles": ["production-milvus"]} == override["minio"]  # not started
    assert override["milvus"]["depends_on"] == "!reset"
