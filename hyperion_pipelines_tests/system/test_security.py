"""Security (issue 9): secrets never leak, document text stays out of INFO logs, the backend client
talks only to its configured host, and the UI binds loopback by default.

Nothing is mocked. Unique secrets are planted in the environment variables the pipeline names, real
runs go against loopback servers that require them (some of those runs fail, so exception text is
written), and then everything the platform wrote is searched for them: the Dagster event log, the
stored runs and snapshots, every file under the instance and data folders as raw bytes, Python
log records, stdout and stderr, the ``hyperion`` command's output and the webserver's GraphQL API.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import urllib.request
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from uuid import uuid4

import psutil
import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus
from dagster._serdes import serialize_value

from hyperion_pipelines.cli import EMBEDDED_INSTANCE_YAML
from hyperion_pipelines.components.declaration import resolve_built_spec
from hyperion_pipelines.definitions import build_definitions
from hyperion_pipelines.embedding.openai_compatible import OpenAICompatibleEmbedder, RemoteEmbeddingError
from hyperion_pipelines.embedding.sentence_transformer import packaged_model_dir
from hyperion_pipelines.orchestration.resources import build_resources
from hyperion_pipelines.settings import Settings
from hyperion_pipelines.sources.backend_api import BackendApiError, BackendDocumentApi
from hyperion_pipelines.spec import BackendApiSource, OpenAICompatibleEmbedding, PipelineSpec

from ..conftest import REPO, SAMPLE_CORPUS, UPLOAD_DAY, UPLOAD_TIME
from ..support.backend_server import BackendServer, FakeBackend, Fault, StoredDocument
from ..support.compose_files import published_ports
from ..support.dagster_dev import dagster_dev as start_dagster_dev
from ..support.embedding_server import EmbeddingService, serve_embeddings
from ..support.loopback import LoopbackServer
from ..support.ports import free_port
from ..support.sample_pipeline import default_spec

# The variables holding secrets that the sample pipeline and the platform name (spec.py defaults).
SECRET_VARIABLES = (
    "HYPERION_BACKEND_TOKEN",
    "HYPERION_MILVUS_TOKEN",
    "HYPERION_OPENAI_API_KEY",
    "HYPERION_ALERT_WEBHOOK_URL",
)
DAY_START = datetime.fromisoformat(UPLOAD_DAY).replace(tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)


@dataclass
class Scenario:
    """What the module's real runs left behind."""

    home: Path
    env: dict[str, str]
    secrets: dict[str, str]  # variable -> the planted token (the webhook URL carries its token)
    marker: str  # a sentence found only in one uploaded document
    run_ids: dict[str, str]
    records: list[tuple[int, str]] = field(default_factory=list)  # (level, formatted record)
    output: str = ""  # stdout and stderr of this process and its children during the runs


class _Collect(logging.Handler):
    def __init__(self, records: list[tuple[int, str]]):
        super().__init__(logging.DEBUG)
        self.records = records
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, self.format(record)))


@contextlib.contextmanager
def captured_output(path: Path) -> Iterator[None]:
    """stdout and stderr, of Python code and of child processes (file descriptors), into ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("a", buffering=1, encoding="utf-8") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield
        finally:
            sink.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def remote_spec(settings: Settings, **changes: Any) -> PipelineSpec:
    """The sample pipeline reading the backend API and embedding with the remote service."""
    update: dict[str, Any] = {
        "source": BackendApiSource(kind="backend_api"),
        "embedding": OpenAICompatibleEmbedding(kind="openai_compatible"),
        **changes,
    }
    return resolve_built_spec(default_spec(settings).model_copy(update=update), settings)


def run_pipeline(settings: Settings, spec: PipelineSpec, instance: DagsterInstance) -> str:
    defs = build_definitions(settings, [spec])
    result = defs.resolve_job_def(f"ingest_{spec.name}").execute_in_process(
        instance=instance, partition_key=UPLOAD_DAY, raise_on_error=False
    )
    return result.run_id


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("security")
    home = root / "hyperion"
    secrets = {name: f"hyp-secret-{uuid4().hex}" for name in SECRET_VARIABLES}
    marker = f"The quartz heron {uuid4().hex[:12]} sings only at dawn."
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("HYPERION_"):
                env.delenv(name)
        env.setenv("HYPERION_HOME", str(home))
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        (home / "uploads").mkdir(parents=True)
        (home / "dagster").mkdir()
        (home / "dagster" / "dagster.yaml").write_text(EMBEDDED_INSTANCE_YAML, encoding="utf-8")
        for name, token in secrets.items():
            value = f"http://127.0.0.1:9/hooks/{token}" if name == "HYPERION_ALERT_WEBHOOK_URL" else token
            env.setenv(name, value)
        env.setenv("HYPERION_BACKEND_MAX_RETRIES", "1")

        backend = FakeBackend(token=secrets["HYPERION_BACKEND_TOKEN"])
        for i, relative in enumerate(["guides/sourdough-starter.md", "web/tide-pools.html"]):
            path = SAMPLE_CORPUS / relative
            backend.add(StoredDocument(f"doc-{i}", path.name, path.read_bytes(), UPLOAD_TIME, path=relative))
        heron = f"# Field notes\n\nA quiet morning by the lake.\n\n{marker}\n\nThe mist lifted by nine.\n".encode()
        backend.add(StoredDocument("heron", "heron.md", heron, UPLOAD_TIME, path="notes/heron.md"))
        # Quarantined, so their reasons are logged as warnings: garbage text and a broken PDF, both quoting the marker.
        garbage = (marker + "\x01\x02\x03\x04\x05\x06\x07\x0e\x0f" * 40).encode()
        backend.add(StoredDocument("garbage", "garbage.txt", garbage, UPLOAD_TIME, path="notes/garbage.txt"))
        broken = b"%PDF-1.7\n1 0 obj << /Title (" + marker.encode() + b") >>\nstream\n" + marker.encode() * 3
        backend.add(StoredDocument("broken", "broken.pdf", broken, UPLOAD_TIME, path="notes/broken.pdf"))
        # The first listing is refused (401), the next fails twice (500: a client retry, then a step
        # failure), then it recovers; the embedding service fails its first request (500, retried).
        backend.inject("/documents", Fault(401, body=b'{"error": "unauthorized"}'), Fault(500), Fault(500))
        service = EmbeddingService(api_key=secrets["HYPERION_OPENAI_API_KEY"], faults=deque([500]))

        records: list[tuple[int, str]] = []
        handler = _Collect(records)
        logger = logging.getLogger()
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        output = root / "output.log"
        run_ids: dict[str, str] = {}
        try:
            with (
                BackendServer(backend) as backend_url,
                serve_embeddings(service) as embeddings_url,
                captured_output(output),
            ):
                env.setenv("HYPERION_BACKEND_URL", backend_url)
                env.setenv("HYPERION_OPENAI_BASE_URL", embeddings_url)
                settings = Settings.from_env()
                closed = f"http://127.0.0.1:{free_port()}"
                with DagsterInstance.get() as instance:
                    spec = remote_spec(settings)
                    run_ids["recovered"] = run_pipeline(settings, spec, instance)
                    # The service stops accepting the key: every attempt, step retries included, is refused.
                    accepted, service.api_key = service.api_key, "another-key"
                    run_ids["embedding_refused"] = run_pipeline(settings, spec, instance)
                    service.api_key = accepted
                    wrong_source = BackendApiSource(kind="backend_api", base_url=closed)
                    run_ids["backend_unreachable"] = run_pipeline(
                        settings, remote_spec(settings, source=wrong_source), instance
                    )
                    milvus = spec.index.model_copy(update={"milvus_uri": closed})
                    run_ids["milvus_unreachable"] = run_pipeline(
                        settings, remote_spec(settings, index=milvus), instance
                    )
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        assert all(auth == f"Bearer {backend.token}" for _, auth in backend.requests)
        yield Scenario(
            home=home,
            env=dict(os.environ),
            secrets=secrets,
            marker=marker,
            run_ids=run_ids,
            records=records,
            output=output.read_text(encoding="utf-8", errors="replace"),
        )


def leaked(text: str, scenario: Scenario) -> list[str]:
    """The planted secrets' variables whose token appears in ``text``."""
    return [name for name, token in scenario.secrets.items() if token in text]


def stored_run_text(instance: DagsterInstance, run_id: str) -> str:
    """Everything the instance stores for a run: events (metadata, errors, stack traces), the run
    with its config and tags, its job and execution plan snapshots."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    parts = [serialize_value(run), json.dumps(run.run_config), json.dumps(dict(run.tags))]
    parts += [serialize_value(entry) for entry in instance.all_logs(run_id)]
    if run.job_snapshot_id:
        parts.append(serialize_value(instance.get_job_snapshot(run.job_snapshot_id)))
    if run.execution_plan_snapshot_id:
        parts.append(serialize_value(instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)))
    return "\n".join(parts)


# -- 1. planted secrets -------------------------------------------------------------------------


def test_the_runs_used_the_secrets_and_failed_where_faults_were_injected(scenario: Scenario) -> None:
    with DagsterInstance.get() as instance:
        runs = {name: instance.get_run_by_id(run_id) for name, run_id in scenario.run_ids.items()}
        texts = {name: stored_run_text(instance, run_id) for name, run_id in scenario.run_ids.items()}
    assert runs["recovered"].status == DagsterRunStatus.SUCCESS
    # The exception text of every injected fault is in the event log, so the search below means something.
    assert "HTTP 401" in texts["recovered"] and "HTTP 500" in texts["recovered"]
    assert runs["embedding_refused"].status == DagsterRunStatus.FAILURE
    assert "embedding service returned HTTP 401" in texts["embedding_refused"]
    assert runs["backend_unreachable"].status == DagsterRunStatus.FAILURE
    assert "BackendApiError" in texts["backend_unreachable"]
    assert runs["milvus_unreachable"].status == DagsterRunStatus.FAILURE
    assert "Fail connecting to server" in texts["milvus_unreachable"]


def test_no_secret_in_the_event_log_runs_or_snapshots(scenario: Scenario) -> None:
    with DagsterInstance.get() as instance:
        for name, run_id in scenario.run_ids.items():
            assert not leaked(stored_run_text(instance, run_id), scenario), name


def test_no_secret_in_any_file_the_instance_or_pipeline_wrote(scenario: Scenario) -> None:
    files = [path for path in scenario.home.rglob("*") if path.is_file()]
    names = {path.name for path in files}
    assert {"runs.db", "state.db"} <= names  # the SQLite run storage and the pipeline state, as raw bytes
    for path in files:
        data = path.read_bytes()
        assert not [n for n, token in scenario.secrets.items() if token.encode() in data], path


def test_no_secret_in_log_records_or_process_output(scenario: Scenario) -> None:
    assert any("HTTP 500" in text for _, text in scenario.records)  # the client's retry warning
    # Dagster's console logger wrote here: the quarantine warnings and the failures' stack traces.
    assert "quarantined notes/garbage.txt" in scenario.output and "HTTP 401" in scenario.output
    for _, text in scenario.records:
        assert not leaked(text, scenario), text
    assert not leaked(scenario.output, scenario)


def test_resources_and_specs_do_not_show_secrets(scenario: Scenario) -> None:
    settings = Settings.from_env(scenario.env)
    spec = remote_spec(settings)
    assert not leaked(repr(settings) + spec.model_dump_json() + repr(spec), scenario)
    resources = build_resources(settings, spec)
    for key, resource in resources.items():
        if key == spec.resources.embedder:
            continue  # test_the_embedding_resource_does_not_show_its_key
        with resource.process_config_and_initialize_cm() as ready:
            assert not leaked(f"{ready!r} {ready!s}", scenario), key
    # The secrets are there, resolved at run time, only not shown.
    with resources[spec.resources.source].process_config_and_initialize_cm() as source:
        assert source.token == scenario.secrets["HYPERION_BACKEND_TOKEN"]


def test_the_embedding_resource_does_not_show_its_key(scenario: Scenario) -> None:
    settings = Settings.from_env(scenario.env)
    spec = remote_spec(settings)
    with build_resources(settings, spec)[spec.resources.embedder].process_config_and_initialize_cm() as ready:
        assert not leaked(f"{ready!r} {ready!s}", scenario)


def test_no_secret_in_command_output(scenario: Scenario) -> None:
    hyperion = str(Path(sys.executable).parent / "hyperion")
    env = {**scenario.env, "HYPERION_MILVUS_URI": f"http://127.0.0.1:{free_port()}"}  # a Milvus that is down
    done = {
        command: subprocess.run(
            [hyperion, command, "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        for command in ("pipelines", "quarantine", "collections")
    }
    assert json.loads(done["pipelines"].stdout)  # the declared pipelines, with their secrets' variable names
    assert done["collections"].returncode != 0 and done["collections"].stderr  # the Milvus error was printed
    for command, result in done.items():
        assert not leaked(result.stdout + result.stderr, scenario), command


# -- 2. document text is not logged at INFO -------------------------------------------------------


def test_document_text_is_never_logged_at_info_or_above(scenario: Scenario) -> None:
    blobs = [p.read_bytes() for p in (scenario.home / "blobs").rglob("*") if p.is_file()]
    assert any(scenario.marker.encode() in blob for blob in blobs)  # the document was landed and processed
    for level, text in scenario.records:
        if level >= logging.INFO:
            assert scenario.marker not in text, text
    with DagsterInstance.get() as instance:
        for run_id in scenario.run_ids.values():
            for entry in instance.all_logs(run_id):
                if entry.level >= logging.INFO:
                    assert scenario.marker not in entry.user_message, entry.user_message
                    assert scenario.marker not in serialize_value(entry.dagster_event), entry.dagster_event_type
    for line in scenario.output.splitlines():
        if any(f" - {name} - " in line for name in ("INFO", "WARNING", "ERROR", "CRITICAL")):
            assert scenario.marker not in line, line


# -- 4 (and 1, the UI). the webserver started the documented way, with default settings ------------


@pytest.fixture(scope="module")
def dagster_dev(scenario: Scenario) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """``dagster dev`` in the repository root as the README starts it, without ``-h``: the default
    binding. It serves the instance the scenario's runs were recorded in."""
    port = free_port()
    log = scenario.home.parent / "dagster-dev.log"
    with start_dagster_dev(port, scenario.env, log) as process:
        yield process, port, log


def graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read().decode()
    assert '"errors"' not in text[:200], text[:2000]
    return text


RUNS_QUERY = "{ runsOrError { ... on Runs { results { runId status runConfigYaml tags { key value } } } } }"
LOGS_QUERY = """query ($runId: ID!) { logsForRun(runId: $runId) { __typename ... on EventConnection { events {
  __typename ... on MessageEvent { message level }
  ... on ErrorEvent { error { message stack className cause { message stack } } } } } } }"""
RESOURCES_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
  __typename ... on PythonError { message }
  ... on RepositoryLocation { repositories { name allTopLevelResourceDetails {
    name configuredValues { key value type } } } } } } } } }"""


def test_no_secret_in_what_the_ui_serves(scenario: Scenario, dagster_dev: tuple[subprocess.Popen, int, Path]) -> None:
    _, port, log = dagster_dev
    runs = graphql(port, RUNS_QUERY)
    assert all(run_id in runs for run_id in scenario.run_ids.values())
    served = [runs, graphql(port, RESOURCES_QUERY)]
    for run_id in scenario.run_ids.values():
        served.append(graphql(port, LOGS_QUERY, {"runId": run_id}))
    assert "Fail connecting to server" in served[-1]  # error events with their stack traces were served
    # The UI shows a secret by its variable's name: the sample pipeline's Milvus token, the alert webhook.
    resources = json.loads(served[1])
    values = [
        value
        for entry in resources["data"]["workspaceOrError"]["locationEntries"]
        for repository in entry["locationOrLoadError"]["repositories"]
        for resource in repository["allTopLevelResourceDetails"]
        for value in resource["configuredValues"]
    ]
    assert {"key": "token", "value": "HYPERION_MILVUS_TOKEN", "type": "ENV_VAR"} in values
    assert {"key": "url", "value": "HYPERION_ALERT_WEBHOOK_URL", "type": "ENV_VAR"} in values
    for text in served:
        assert not leaked(text, scenario)
    assert not leaked(log.read_text(errors="replace"), scenario)


def listening(process: subprocess.Popen) -> list[tuple[str, int]]:
    """The TCP addresses the process and its children listen on."""
    parent = psutil.Process(process.pid)
    found = []
    for proc in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found.append((conn.laddr.ip, conn.laddr.port))
    return found


def non_loopback_address() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_the_webserver_listens_on_loopback_only_by_default(dagster_dev: tuple[subprocess.Popen, int, Path]) -> None:
    process, port, _ = dagster_dev
    sockets = listening(process)
    assert ("127.0.0.1", port) in sockets, sockets
    for ip, bound in sockets:  # the webserver and the code server dagster dev starts
        assert ip in ("127.0.0.1", "::1"), f"listening on {ip}:{bound}"
    other = non_loopback_address()
    if other is not None:  # from another interface, nothing answers
        with pytest.raises(OSError), socket.create_connection((other, port), timeout=5):
            pass


def test_the_compose_webserver_binds_all_interfaces_only_inside_its_container() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    command = services["webserver"]["command"]
    assert command[command.index("-h") + 1] == "0.0.0.0"  # inside the container, behind the published port
    assert published_ports(services["webserver"]) == [("127.0.0.1", 3000)]
    for name, service in services.items():
        for host_ip, port in published_ports(service):
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond the host"
    assert "-h 127.0.0.1" in (REPO / "README.md").read_text()  # the README's dagster dev command


# -- 3. the backend client talks only to its configured host -------------------------------------


class Decoy:
    """A second loopback server that answers anything plausibly and counts every request."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        decoy = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                decoy.requests.append(f"{self.command} {self.path}")
                body = json.dumps({"documents": [], "deletions": [], "data": [], "next_page_token": None}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *args: object) -> None:
                pass

        self.server = LoopbackServer(Handler)


class HostileBackend:
    """A backend whose answers point elsewhere: URL fields in listings, a next page given as a URL,
    a document id that is a URL, and (per path) redirects to the decoy."""

    def __init__(self, token: str, decoy_url: str) -> None:
        self.token, self.decoy_url = token, decoy_url
        self.contents = {"doc-1": b"first document, served by the configured host", f"{decoy_url}/x": b"second"}
        self.redirects: dict[str, tuple[int, bytes]] = {}  # path -> (status, body)
        self.requests: list[str] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                backend.requests.append(self.path)
                url = urlsplit(self.path)
                if url.path in backend.redirects:
                    status, body = backend.redirects[url.path]
                    return self._send(status, body, {"Location": f"{backend.decoy_url}{url.path}"})
                if self.headers.get("Authorization") != f"Bearer {backend.token}":
                    return self._send(401, b"{}")
                if url.path == "/documents":
                    query = parse_qs(url.query)
                    return self._send(200, json.dumps(backend.listing("page_token" in query)).encode())
                for key, content in backend.contents.items():
                    if url.path == f"/documents/{quote(key, safe='')}/content":
                        return self._send(200, content)
                return self._send(404, b"{}")

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = LoopbackServer(Handler)

    def entry(self, key: str) -> dict[str, Any]:
        decoy = self.decoy_url
        return {
            "id": key,
            "name": "doc.txt",
            "size": len(self.contents[key]),
            "uploaded_at": UPLOAD_TIME.isoformat(),
            "download_url": f"{decoy}/download/{key}",
            "url": f"{decoy}/documents/{key}",
            "content_url": f"{decoy}/content",
            "links": {"self": f"{decoy}/self", "content": f"{decoy}/content"},
        }

    def listing(self, second_page: bool) -> dict[str, Any]:
        if second_page:
            return {"documents": [self.entry(f"{self.decoy_url}/x")], "next_page_token": None}
        return {
            "documents": [self.entry("doc-1")],
            "next_page_token": f"{self.decoy_url}/documents?page=2",
            "next": f"{self.decoy_url}/documents?page=2",
            "links": {"next": f"{self.decoy_url}/documents?page=2"},
        }


@contextlib.contextmanager
def hostile_backend() -> Iterator[tuple[HostileBackend, Decoy, str]]:
    decoy = Decoy()
    with decoy.server as decoy_url:
        backend = HostileBackend("hostile-test-token", decoy_url)
        with backend.server as url:
            yield backend, decoy, url


def test_urls_in_listings_are_never_fetched() -> None:
    with hostile_backend() as (backend, decoy, url):
        with BackendDocumentApi(url, backend.token, backoff_base_s=0.01) as api:
            refs = list(api.list_documents(DAY_START, DAY_END))
            assert [api.read(ref) for ref in refs] == list(backend.contents.values())
        assert decoy.requests == []
        # The next page's token went back to the configured host as an opaque parameter.
        second = [p for p in backend.requests if p.startswith("/documents?") and "page_token" in p]
        assert len(second) == 1 and parse_qs(urlsplit(second[0]).query)["page_token"] == [
            f"{decoy.server.url}/documents?page=2"
        ]
        assert all(ref.uri.startswith(f"{url}/documents/") for ref in refs)


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("path", ["/documents", "/documents/doc-1/content"])
def test_a_redirect_to_another_host_is_not_followed(status: int, path: str) -> None:
    with hostile_backend() as (backend, decoy, url):
        backend.redirects[path] = (status, b"moved")
        with (
            BackendDocumentApi(url, backend.token, max_retries=1, backoff_base_s=0.01) as api,
            pytest.raises(BackendApiError),
        ):
            for ref in api.list_documents(DAY_START, DAY_END):
                api.read(ref)
        assert decoy.requests == []


@pytest.mark.parametrize("path", ["/documents", "/documents/doc-1/content"])
def test_a_redirect_fails_at_once_naming_the_redirect(path: str) -> None:
    with hostile_backend() as (backend, decoy, url):
        # The redirect's body has exactly the size the listing announced for the document.
        backend.redirects[path] = (302, b"x" * len(backend.contents["doc-1"]))
        with (
            BackendDocumentApi(url, backend.token, max_retries=2, backoff_base_s=0.01) as api,
            pytest.raises(BackendApiError, match="redirect"),
        ):
            for ref in api.list_documents(DAY_START, DAY_END):
                api.read(ref)
        assert [r.split("?")[0] for r in backend.requests].count(path) == 1 and decoy.requests == []


def test_the_embedding_client_does_not_follow_a_redirect() -> None:
    decoy = Decoy()

    class Redirecting(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(307)
            self.send_header("Location", f"{decoy.server.url}/v1/embeddings")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with decoy.server, LoopbackServer(Redirecting) as url:
        embedder = OpenAICompatibleEmbedder(
            f"{url}/v1", "m", api_key="k", tokenizer_dir=packaged_model_dir(), max_retries=1, backoff_base_s=0.01
        )
        with pytest.raises(RemoteEmbeddingError):
            embedder.embed(["a text that must not leave for another host"])
        embedder.close()
    assert decoy.requests == []
