"""The production stack's scenario, against the running Compose project (driven by deploy/smoke.sh).

Standard library only: it talks to the webserver's GraphQL API and Prometheus over HTTP, as a
user's script would, and to Docker and the containers through the `docker` command. Every step
asserts against the real parts; the first failed expectation stops the scenario, names itself and
exits 1. The last line printed is one JSON summary.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "hyperion_pipelines" / "sample_corpus"
INGEST_ASSETS = [
    "raw_documents", "parsed_documents", "quarantined_documents", "document_chunks", "chunk_embeddings", "vector_index",
]  # fmt: skip
LOCATION, REPOSITORY = "hyperion_pipelines", "__repository__"


class Expectation(Exception):
    """A step whose expectation failed."""


class Stack:
    def __init__(
        self,
        compose: list[str],
        ui: str,
        prometheus: str,
        flower: str = "",
        flower_auth: str = "",
        search_api: str = "",
        search_token: str = "",
    ):
        self.compose, self.ui, self.prometheus = compose, ui.rstrip("/"), prometheus.rstrip("/")
        self.flower, self.flower_auth = flower.rstrip("/"), flower_auth
        self.search_api, self.search_token = search_api.rstrip("/"), search_token
        self.summary: dict[str, Any] = {"steps": {}, "runs": {}}

    # -- plumbing ---------------------------------------------------------------------------------
    def docker(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        done = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=600)
        if check and done.returncode != 0:
            raise Expectation(f"docker {' '.join(args[:3])} failed: {done.stderr.decode()[-500:]}")
        return done.stdout.decode()

    def compose_cmd(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
        """``env``: variables that override the env file's (compose reads the shell's first)."""
        environ = {**os.environ, **env} if env else None
        done = subprocess.run([*self.compose, *args], capture_output=True, timeout=900, text=True, env=environ)
        if check and done.returncode != 0:
            raise Expectation(f"docker compose {' '.join(args[:2])} failed: {done.stderr[-800:]}")
        return done.stdout

    def container(self, service: str) -> str:
        return self.compose_cmd("ps", "-q", service).strip()

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.ui}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise Expectation(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def in_code_location(self, *command: str) -> str:
        return self.docker("exec", self.container("code-location"), *command)

    def upload(self, files: dict[str, bytes], day: datetime) -> None:
        """Files into the uploads volume through the code-location container, owned by its user,
        with their modification time (the upload day) set to ``day``."""
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(content), day.timestamp(), 0o644
                tar.addfile(info, io.BytesIO(content))
        self.docker("exec", "-i", self.container("code-location"), "tar", "-x", "-C", "/data/uploads",
                    input=archive.getvalue())  # fmt: skip

    def step(self, name: str, action: Callable[[], Any]) -> Any:
        started = time.monotonic()
        print(f"smoke: {name} ...", file=sys.stderr, flush=True)
        try:
            result = action()
        except Expectation as exc:
            raise Expectation(f"{name}: {exc}") from None
        self.summary["steps"][name] = round(time.monotonic() - started, 1)
        return result

    # -- queries ----------------------------------------------------------------------------------
    def runs(self, tags: dict[str, str] | None = None) -> list[dict]:
        data = self.graphql(
            """query($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs { results {
                runId status startTime endTime tags { key value } } } } }""",
            {"filter": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}},
        )
        return data["runsOrError"]["results"]

    def wait_for(self, what: str, probe: Callable[[], Any], timeout_s: float, every_s: float = 3.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise Expectation(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(every_s)

    def index_counts(self) -> dict[str, int]:
        """Entries behind the live alias, read from Milvus inside the code-location container."""
        out = self.in_code_location("hyperion", "collections", "--json")
        live = [c for c in json.loads(out)["collections"] if c["live"]]
        return {"entries": live[0]["entries"] if live else 0}

    def manifest_chunks_total(self) -> int:
        """Chunks of every upload day, from each day's latest document_chunks materialisation."""
        data = self.graphql(
            """{ assetOrError(assetKey: {path: ["document_chunks"]}) { ... on Asset {
                assetMaterializations(limit: 1000) { partition metadataEntries {
                  label ... on IntMetadataEntry { intValue } } } } } }"""
        )
        latest: dict[str, int] = {}
        for event in data["assetOrError"]["assetMaterializations"]:  # newest first
            entries = {m["label"]: m.get("intValue") for m in event["metadataEntries"]}
            latest.setdefault(event["partition"], entries.get("chunks") or 0)
        return sum(latest.values())

    def prometheus_query(self, query: str) -> list[dict]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)["data"]["result"]

    def flower_tasks(self) -> dict[str, dict]:
        """Every task Flower has seen (its HTTP API, with the stack's basic-auth login)."""
        request = urllib.request.Request(f"{self.flower}/api/tasks")
        login = base64.b64encode(self.flower_auth.encode()).decode()
        request.add_header("Authorization", f"Basic {login}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def psql(self, sql: str) -> str:
        return self.docker("exec", self.container("postgres"), "psql", "-U", "hyperion", "-d", "hyperion",
                           "-At", "-c", sql).strip()  # fmt: skip


def check_services(stack: Stack) -> dict[str, str]:
    states = {}
    for line in filter(str.strip, stack.compose_cmd("ps", "--format", "json").splitlines()):
        # Compose prints one JSON object per line (older releases: one array).
        entries = json.loads(line) if line.strip().startswith("[") else [json.loads(line)]
        for entry in entries:
            states[entry["Service"]] = entry.get("Health") or entry.get("State")
    unhealthy = {s: h for s, h in states.items() if h != "healthy"}
    if unhealthy or len(states) < 7:
        raise Expectation(f"services not all healthy: {states}")
    return states


def check_definitions(stack: Stack) -> dict[str, int]:
    data = stack.graphql(
        """{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } }
             repositoriesOrError { ... on RepositoryConnection {
               nodes { name sensors { name } schedules { name } } } } }"""
    )
    assets = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
    checks = [c for n in data["assetNodes"] for c in (n["assetChecksOrError"].get("checks") or [])]
    [repo] = data["repositoriesOrError"]["nodes"]
    sensors, schedules = {s["name"] for s in repo["sensors"]}, {s["name"] for s in repo["schedules"]}
    missing = [a for a in INGEST_ASSETS if a not in assets]
    wanted = {"reconcile_documents_daily", "reclaim_storage_nightly"}
    if missing or not checks or "documents_uploads" not in sensors or not wanted <= schedules:
        raise Expectation(
            f"code location incomplete: assets {sorted(assets)}, sensors {sensors}, schedules {schedules}"
        )
    return {"assets": len(assets), "checks": len(checks), "sensors": len(sensors), "schedules": len(schedules)}


def image_as_built(stack: Stack) -> dict[str, str]:
    """What the code-location image gives a run, observed in its running container: a non-root
    user, the CPU build of torch, OCR, the onnx and celery extras, offline model loading and
    the production instance settings."""
    facts = {
        "uid": stack.in_code_location("id", "-u").strip(),
        "torch_cuda": stack.in_code_location("python", "-c", "import torch; print(torch.version.cuda)").strip(),
        "extras": stack.in_code_location(
            "python", "-c", "import onnxruntime, celery, dagster_celery; print('ok')"
        ).strip(),
        "tesseract": stack.in_code_location("tesseract", "--version").splitlines()[0],
        "hf_hub_offline": stack.in_code_location("printenv", "HF_HUB_OFFLINE").strip(),
        "run_launcher": stack.in_code_location(
            "python", "-c", "import dagster; print(type(dagster.DagsterInstance.get().run_launcher).__name__)"
        ).strip(),
    }
    as_built = {
        "uid": facts["uid"] != "0",
        "torch_cuda": facts["torch_cuda"] == "None",
        "extras": facts["extras"] == "ok",
        "tesseract": facts["tesseract"].startswith("tesseract"),
        "hf_hub_offline": facts["hf_hub_offline"] == "1",
        "run_launcher": facts["run_launcher"] == "DockerRunLauncher",
    }
    if not all(as_built.values()):
        raise Expectation(f"the code-location image is not as built: {facts}")
    return facts


def sample_files() -> dict[str, bytes]:
    return {str(p.relative_to(SAMPLE)): p.read_bytes() for p in sorted(SAMPLE.rglob("*")) if p.is_file()}


def sensor_run(stack: Stack, day: datetime) -> dict:
    """Uploads picked up by the sensor with no click; the run in its own container; in PostgreSQL."""
    before = {r["runId"] for r in stack.runs()}
    uploaded = time.time()
    stack.upload(sample_files(), day)
    run = stack.wait_for(
        "the upload sensor's run to succeed",
        lambda: next((r for r in stack.runs() if r["runId"] not in before and r["status"] == "SUCCESS"), None),
        timeout_s=600,
    )
    failed = [r for r in stack.runs() if r["runId"] not in before and r["status"] == "FAILURE"]
    if failed:
        raise Expectation(f"runs failed: {[r['runId'] for r in failed]}")
    tags = {t["key"]: t["value"] for t in run["tags"]}
    if tags.get("dagster/sensor_name") != "documents_uploads":
        raise Expectation(f"run {run['runId']} was not started by the upload sensor: {tags}")

    def run_containers() -> list[str]:
        return stack.docker("ps", "-a", "--filter", f"label=dagster/run_id={run['runId']}", "--format",
                            "{{.ID}} {{.Image}} {{.Status}}").strip().splitlines()  # fmt: skip

    # The run is recorded as a success a few seconds before its process (the container) exits.
    containers = stack.wait_for(
        "the run's container to exit", lambda: (c := run_containers()) and all("Exited" in x for x in c) and c, 120
    )
    if len(containers) != 1 or "hyperion-pipelines:" not in containers[0] or "Exited (0)" not in containers[0]:
        raise Expectation(f"run {run['runId']} did not run in its own container: {containers}")
    in_pg = stack.psql(f"select count(*) from runs where run_id = '{run['runId']}'")
    events = int(stack.psql(f"select count(*) from event_logs where run_id = '{run['runId']}'"))
    if in_pg != "1" or events < 20:
        raise Expectation(f"run {run['runId']} not in PostgreSQL (runs {in_pg}, events {events})")
    created = stack.docker("inspect", "-f", "{{.Created}}", containers[0].split()[0]).strip()
    created_at = datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()
    return {
        "run_id": run["runId"],
        "container": containers[0].split()[0],
        # From the launcher creating the run's container to the run starting inside it.
        "container_start_s": round(run["startTime"] - created_at, 1),
        "upload_to_searchable_s": round(run["endTime"] - uploaded, 1),
        "run_seconds": round(run["endTime"] - run["startTime"], 1),
        "events_in_postgres": events,
    }


def search_inside(stack: Stack) -> dict:
    hits = json.loads(stack.in_code_location("hyperion", "search", "how do honeybees survive the winter", "--json"))
    if not hits or not hits[0]["source"].startswith("reports/honeybee"):
        raise Expectation(f"search did not find the honeybee report first: {hits[:2]}")
    entries, chunks = stack.index_counts()["entries"], stack.manifest_chunks_total()
    if entries != chunks:
        raise Expectation(f"entries {entries} != chunks {chunks}")
    return {"top_hit": hits[0]["source"], "entries": entries, "chunks": chunks}


def search_api(stack: Stack) -> dict:
    """The search-api service answers as `hyperion search --json` does, asks for its token, and
    Prometheus scrapes its metrics."""
    query = "how do honeybees survive the winter"
    cli = json.loads(stack.in_code_location("hyperion", "search", query, "-k", "3", "--json"))

    def post(headers: dict[str, str]) -> tuple[int, dict]:
        body = json.dumps({"query": query, "k": 3}).encode()
        request = urllib.request.Request(f"{stack.search_api}/search", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as refused:
            return refused.code, json.load(refused)

    status, _ = post({"Content-Type": "application/json"})
    if status != 401:
        raise Expectation(f"the search API answered {status} without its token")
    status, answer = post({"Content-Type": "application/json", "Authorization": f"Bearer {stack.search_token}"})
    cli_fields = ("score", "document_id", "source", "heading_path", "text")
    rows = [{k: row[k] for k in cli_fields} for row in answer["results"]]
    if status != 200 or rows != cli:
        raise Expectation(f"the search API's answer ({status}) differs from the CLI's: {rows[:1]} against {cli[:1]}")
    series = stack.wait_for(
        "Prometheus to scrape the search API",
        lambda: stack.prometheus_query('hyperion_search_requests_total{status="200"}'),
        timeout_s=120,
        every_s=5,
    )
    return {"top_hit": rows[0]["source"], "collection": answer["collection"], "series": len(series)}


def metrics_scraped(stack: Stack, run_id: str) -> dict:
    series = stack.wait_for(
        "Prometheus to scrape the run's metrics from the push gateway",
        lambda: stack.prometheus_query('hyperion_check_passed{pipeline="documents"}'),
        timeout_s=120,
        every_s=5,
    )
    return {"series": len(series)}


def backfill_three_days(stack: Stack, days: list[str]) -> dict:
    data = stack.graphql(
        """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {"params": {"assetSelection": [{"path": [a]} for a in INGEST_ASSETS], "partitionNames": days}},
    )["launchPartitionBackfill"]
    if data["__typename"] != "LaunchBackfillSuccess":
        raise Expectation(f"backfill not launched: {data}")
    backfill = data["backfillId"]

    def finished() -> list[dict] | None:
        runs = stack.runs({"dagster/backfill": backfill})
        done = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        return runs if len(runs) == len(days) and len(done) == len(days) else None

    runs = stack.wait_for(f"backfill {backfill} to finish", finished, timeout_s=900, every_s=5)
    if any(r["status"] != "SUCCESS" for r in runs):
        raise Expectation(f"backfill runs failed: {[(r['runId'], r['status']) for r in runs]}")
    containers = {
        r["runId"]: stack.docker("ps", "-aq", "--filter", f"label=dagster/run_id={r['runId']}").split() for r in runs
    }
    if any(len(c) != 1 for c in containers.values()):
        raise Expectation(f"backfill runs not one container each: {containers}")
    spans = sorted((r["startTime"], r["endTime"]) for r in runs)
    most = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    if most > 2:  # deploy/dagster.yaml: hyperion/heavy runs, 2 at once
        raise Expectation(f"{most} ingest runs ran at once, above the limit of 2")
    return {"backfill_id": backfill, "runs": len(runs), "most_at_once": most}


def long_documents(prefix: str, count: int) -> dict[str, bytes]:
    """Enough text that embedding takes a while on a CPU (the window a fault is injected in)."""
    words = [
        "harbour",
        "tide",
        "mooring",
        "lantern",
        "keeper",
        "chart",
        "beacon",
        "current",
        "shoal",
        "channel",
        "buoy",
        "pier",
        "ledger",
        "storm",
    ]
    files = {}
    for n in range(count):
        body = " ".join(words[(n * 7 + i) % len(words)] + (f" {n}-{i}." if i % 12 == 11 else "") for i in range(1500))
        files[f"{prefix}/note-{n:03d}.txt"] = f"Harbour note {prefix} {n}\n\n{body}\n".encode()
    return files


def step_status(stack: Stack, run_id: str) -> dict[str, str]:
    data = stack.graphql(
        """query($id: ID!) { runOrError(runId: $id) { ... on Run { status stepStats { stepKey status } } } }""",
        {"id": run_id},
    )["runOrError"]
    return {"run": data["status"], **{s["stepKey"]: s["status"] for s in data["stepStats"]}}


def new_run(stack: Stack, before: set[str], day: str) -> dict | None:
    return next(
        (
            r
            for r in stack.runs()
            if r["runId"] not in before and {"key": "dagster/partition", "value": day} in r["tags"]
        ),
        None,
    )


def embedding_step(status: dict[str, str]) -> bool:
    return any(key.endswith("chunk_embeddings") and value == "IN_PROGRESS" for key, value in status.items())


def exact_index(stack: Stack) -> dict:
    entries, chunks = stack.index_counts()["entries"], stack.manifest_chunks_total()
    if entries != chunks:
        raise Expectation(f"index not exact: {entries} entries, {chunks} chunks recorded by the days' runs")
    return {"entries": entries}


def run_container_killed(stack: Stack, day: datetime) -> dict:
    """`docker kill` of a run's container mid-embedding: run monitoring fails it, run retries
    re-execute it, the index ends exact."""
    key = f"{day:%Y-%m-%d}"
    before = {r["runId"] for r in stack.runs()}
    stack.upload(long_documents("killed", 40), day)
    run = stack.wait_for("the sensor's run of the long documents", lambda: new_run(stack, before, key), 300)
    stack.wait_for("embedding to start", lambda: embedding_step(step_status(stack, run["runId"])), 600, every_s=1)
    [container] = stack.docker("ps", "-q", "--filter", f"label=dagster/run_id={run['runId']}").split()
    stack.docker("kill", container)
    killed_at = time.time()
    failed = stack.wait_for(
        "run monitoring to mark the killed run failed",
        lambda: step_status(stack, run["runId"])["run"] in ("FAILURE", "CANCELED") or None,
        300,
    )
    retry = stack.wait_for(
        "run retries to re-execute it",
        lambda: next((r for r in stack.runs({"dagster/parent_run_id": run["runId"]})), None),
        300,
    )
    done = stack.wait_for(
        "the retried run to succeed",
        lambda: (
            step_status(stack, retry["runId"])["run"] in ("SUCCESS", "FAILURE") and step_status(stack, retry["runId"])
        ),
        900,
    )
    if done["run"] != "SUCCESS":
        raise Expectation(f"the retry {retry['runId']} ended {done['run']}")
    return {
        "run_id": run["runId"],
        "retry_run_id": retry["runId"],
        "marked_failed": bool(failed),
        "recovered_s": round(time.time() - killed_at, 1),
        **exact_index(stack),
    }


def milvus_stopped(stack: Stack, day: datetime) -> dict:
    """The Milvus service stopped during a run: the step retries, the run fails cleanly past its
    limit; a re-run after the service returns leaves the index exact."""
    key = f"{day:%Y-%m-%d}"
    before = {r["runId"] for r in stack.runs()}
    stack.upload(long_documents("outage", 20), day)
    run = stack.wait_for("the sensor's run of the outage day", lambda: new_run(stack, before, key), 300)
    stack.wait_for("embedding to start", lambda: embedding_step(step_status(stack, run["runId"])), 600, every_s=1)
    # -t 0: at once (SIGKILL). A graceful stop waits up to 10 s for a server that may ignore SIGTERM,
    # long enough for a fast run to finish its writes before Milvus is gone.
    stack.compose_cmd("stop", "-t", "0", "milvus")
    status = stack.wait_for(
        "the run to fail past its retries",
        lambda: (s := step_status(stack, run["runId"]))["run"] in ("FAILURE", "SUCCESS") and s,
        900,
        every_s=5,
    )
    stack.compose_cmd("start", "milvus")
    stack.compose_cmd("up", "-d", "--wait", "milvus")
    if status["run"] != "FAILURE":
        raise Expectation(f"the run with Milvus stopped ended {status['run']}")
    retries = int(stack.psql(
        f"select count(*) from event_logs where run_id = '{run['runId']}' and dagster_event_type = 'STEP_UP_FOR_RETRY'"
    ))  # fmt: skip
    before = {r["runId"] for r in stack.runs()}
    data = stack.graphql(
        """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
             __typename ... on LaunchBackfillSuccess { backfillId } } }""",
        {"params": {"assetSelection": [{"path": [a]} for a in INGEST_ASSETS], "partitionNames": [key]}},
    )["launchPartitionBackfill"]
    rerun = stack.wait_for(
        "the re-run after Milvus returned",
        lambda: next(
            (r for r in stack.runs({"dagster/backfill": data["backfillId"]}) if r["status"] in ("SUCCESS", "FAILURE")),
            None,
        ),  # fmt: skip
        900,
        every_s=5,
    )
    if rerun["status"] != "SUCCESS":
        raise Expectation(f"the re-run {rerun['runId']} ended {rerun['status']}")
    return {"run_id": run["runId"], "step_retries": retries, "rerun_id": rerun["runId"], **exact_index(stack)}


def survives_down_up(stack: Stack, before: dict, day: datetime) -> dict:
    runs_before = len(stack.runs())
    stack.compose_cmd("down")
    stack.compose_cmd("up", "-d", "--wait")
    if len(stack.runs()) != runs_before:
        raise Expectation("runs lost across down/up")
    kept = search_inside(stack)
    if kept["entries"] != before["entries"]:
        raise Expectation(f"index changed across down/up: {kept['entries']} != {before['entries']}")
    quarantined = int(stack.psql("select count(*) from hyperion_quarantine where released_at is null"))
    manifest = int(stack.psql("select count(*) from hyperion_document_manifest"))
    new = sensor_run_for_one(stack, day)
    return {"runs_kept": runs_before, "manifest_rows": manifest, "quarantined": quarantined, "new_upload_run": new}


def sensor_run_for_one(stack: Stack, day: datetime) -> str:
    before = {r["runId"] for r in stack.runs()}
    stack.upload({"after-restart.md": b"# Kept across restarts\n\nLanterns of the harbour are lit at dusk.\n"}, day)
    run = stack.wait_for(
        "a run for the upload after the restart",
        lambda: next((r for r in stack.runs() if r["runId"] not in before and r["status"] == "SUCCESS"), None),
        timeout_s=600,
    )
    hits = json.loads(stack.in_code_location("hyperion", "search", "harbour lanterns at dusk", "-k", "1", "--json"))
    if not hits or hits[0]["source"] != "after-restart.md":
        raise Expectation(f"the new upload is not searchable: {hits}")
    return run["runId"]


def celery_workers(stack: Stack, days: list[datetime]) -> dict:
    """The `celery` profile turned on (HYPERION_EXECUTOR=celery): RabbitMQ, two worker containers
    and Flower start; two upload days' runs hand every step to the workers, both workers take
    steps, Flower lists each run's tasks as succeeded, and the index stays exact."""
    on = {"HYPERION_EXECUTOR": "celery"}
    stack.compose_cmd("--profile", "celery", "up", "-d", "--wait", env=on)
    workers = {f"worker@{cid[:12]}" for cid in stack.compose_cmd("--profile", "celery", "ps", "-q", "worker").split()}
    if len(workers) != 2:
        raise Expectation(f"expected two worker containers, found {sorted(workers)}")
    before = {r["runId"] for r in stack.runs()}
    for day in days:
        text = f"# Ledger of {day:%d %B}\n\nCargo weighed at the quay.\n"
        stack.upload({f"celery-{day:%m%d}.md": text.encode()}, day)
    runs = stack.wait_for(
        "both days' runs to succeed",
        lambda: (
            (new := [r for r in stack.runs() if r["runId"] not in before and r["status"] == "SUCCESS"])
            and len(new) >= len(days)
            and new
        ),
        timeout_s=900,
    )
    failed = [r["runId"] for r in stack.runs() if r["runId"] not in before and r["status"] == "FAILURE"]
    if failed:
        raise Expectation(f"runs failed on Celery: {failed}")
    # The profile's broker is new, so every task Flower knows is one of these runs' steps.
    tasks = list(stack.flower_tasks().values())
    if len(tasks) < len(days) * len(INGEST_ASSETS) or any(t["state"] != "SUCCESS" for t in tasks):
        raise Expectation(f"Flower shows {[(t['name'], t['state'], t['worker']) for t in tasks]}")
    took = {task["worker"] for task in tasks}
    if took != workers:
        raise Expectation(f"steps ran on {sorted(took)}, not on both workers {sorted(workers)}")
    return {
        "runs": [r["runId"] for r in runs],
        "tasks_per_worker": {w: sum(t["worker"] == w for t in tasks) for w in sorted(workers)},
        **exact_index(stack),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compose", required=True, help="the docker compose command line, as one string")
    parser.add_argument("--ui", required=True)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--flower", required=True, help="Flower's URL, for the Celery profile's step")
    parser.add_argument("--flower-auth", required=True, help="Flower's basic-auth login, user:password")
    parser.add_argument("--search-api", required=True, help="the search-api service's URL")
    parser.add_argument("--search-token", required=True, help="its bearer token")
    parser.add_argument("--timings", default="{}", help="JSON object of smoke.sh's own timings")
    args = parser.parse_args()
    flower, search = (args.flower, args.flower_auth), (args.search_api, args.search_token)
    stack = Stack(args.compose.split(), args.ui, args.prometheus, *flower, *search)
    stack.summary["timings"] = json.loads(args.timings)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=n) for n in (3, 2, 1)]
    try:
        stack.summary["services"] = stack.step("services healthy", lambda: check_services(stack))
        stack.summary["definitions"] = stack.step("definitions over GraphQL", lambda: check_definitions(stack))
        stack.summary["image"] = stack.step("the code-location image as built", lambda: image_as_built(stack))
        first = stack.step("sensor run in its own container", lambda: sensor_run(stack, days[0]))
        stack.summary["runs"]["sensor"] = first
        index = stack.step("search inside the code location", lambda: search_inside(stack))
        stack.summary["index"] = index
        stack.summary["search_api"] = stack.step("search API beside the UI", lambda: search_api(stack))
        stack.summary["metrics"] = stack.step("metrics in Prometheus", lambda: metrics_scraped(stack, first["run_id"]))
        for day in days[1:]:  # two more upload days, for the backfill of three
            stack.upload({f"day-{day:%m%d}.md": f"# Notes of {day:%d %B}\n\nTide tables and moorings.\n".encode()}, day)
        stack.wait_for("the sensor's runs of the other days", lambda: len([r for r in stack.runs()
                       if r["status"] == "SUCCESS"]) >= 3, timeout_s=600)  # fmt: skip
        stack.summary["runs"]["backfill"] = stack.step(
            "backfill of three days over GraphQL", lambda: backfill_three_days(stack, [f"{d:%Y-%m-%d}" for d in days])
        )
        stack.summary["runs"]["killed"] = stack.step(
            "run container killed mid-embedding", lambda: run_container_killed(stack, today - timedelta(days=4))
        )
        stack.summary["runs"]["milvus_outage"] = stack.step(
            "Milvus stopped during a run", lambda: milvus_stopped(stack, today - timedelta(days=5))
        )
        index = search_inside(stack)
        stack.summary["restart"] = stack.step(
            "down and up, volumes kept", lambda: survives_down_up(stack, index, today)
        )
        stack.summary["celery"] = stack.step(
            "steps on Celery worker containers",
            lambda: celery_workers(stack, [today - timedelta(days=n) for n in (6, 7)]),
        )
    except Expectation as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        stack.summary["failed"] = str(exc)
        print(json.dumps(stack.summary))
        return 1
    stack.summary["passed"] = True
    print(json.dumps(stack.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
