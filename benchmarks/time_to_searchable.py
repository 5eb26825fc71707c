"""Time from a file landing in the uploads folder to search returning it, with the daemon running.

A real ``dagster-daemon`` runs the upload sensor on the embedded instance (SQLite, one run at a
time), Milvus is milvus-lite's own server (so this process can search while runs write), and the
packaged model embeds. Uploads arrive at random moments of the sensor's cycle. For each upload:

    landed -> run requested (sensor tick) -> run started -> vectors written: returned by search
    (the run's index checks come after; the run's total time is reported too)

    .venv/bin/python benchmarks/time_to_searchable.py --uploads 8
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SENSOR_INTERVAL_S = 15  # the sample pipeline's upload_sensor.minimum_interval_seconds
TOPICS = [
    "zebrafish fin regeneration", "basalt column formation", "sourdough hydration ratios", "glacier calving fronts",
    "violin bow rehairing", "lichen growth on granite", "tidal bore surfing", "beeswax candle dipping",
    "orbital resonance of moons", "copper roof patina", "mangrove root aeration", "harp string tension",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on port {port}")


@contextmanager
def processes(home: Path, env: dict[str, str]) -> Iterator[None]:
    """milvus-lite's server and the daemon, each in its own process group; stopped on exit."""
    port = int(env["HYPERION_MILVUS_URI"].rsplit(":", 1)[1])
    started = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "milvus_lite",
                "server",
                "--data-dir",
                str(home / "milvus"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    ]
    try:
        wait_for_port(port)
        started.append(
            subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                cwd=REPO,
                env=env,
                stdout=open(home / "daemon.log", "w"),  # noqa: SIM115 - the daemon outlives this call
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        )
        yield
    finally:
        for process in reversed(started):
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def environment(home: Path) -> dict[str, str]:
    from hyperion_pipelines.cli import EMBEDDED_INSTANCE_YAML

    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "uploads").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text(EMBEDDED_INSTANCE_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERION_")}
    env.update(
        HYPERION_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        HYPERION_MILVUS_URI=f"http://127.0.0.1:{free_port()}",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


def returned_by_search(client: Any, embedder: Any, query: str, source: str) -> bool:
    aliases = client.list_aliases().get("aliases", [])
    if "hyperion_documents" not in aliases:
        return False
    vector = embedder.embed([query])[0].tolist()
    hits = client.search("hyperion_documents", data=[vector], limit=3, output_fields=["source"])
    return any(hit["entity"]["source"] == source for hit in hits[0])


def latest_run_for(instance: Any, day: str, after: float) -> Any:
    """The run of ``day`` the sensor created after ``after`` (epoch seconds), if any."""
    from dagster import RunsFilter

    records = instance.get_run_records(filters=RunsFilter(tags={"dagster/partition": day}), limit=5)
    return next((r for r in records if r.create_timestamp.timestamp() > after), None)


def finished_run(day: str, after: float, timeout_s: float = 300) -> tuple[Any, Any]:
    """The run record and stats of the run that indexed the upload, once it has ended (the upload
    is searchable as soon as its vectors are written; the run's checks come after)."""
    from dagster import DagsterInstance

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with DagsterInstance.get() as instance:
            record = latest_run_for(instance, day, after)
            stats = instance.get_run_stats(record.dagster_run.run_id) if record else None
        if stats is not None and stats.end_time is not None:
            return record, stats
        time.sleep(0.5)
    raise TimeoutError(f"the run of {day} did not end within {timeout_s} s")


def measure(uploads: int, home: Path, seed: int = 7) -> dict[str, Any]:
    if home.exists():
        shutil.rmtree(home)
    env = environment(home)
    os.environ.update(env)  # this process reads the same instance and Milvus
    from pymilvus import MilvusClient

    from hyperion_pipelines.embedding.sentence_transformer import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm-up"])
    rng = random.Random(seed)
    rows = []
    with processes(home, env):
        client = MilvusClient(env["HYPERION_MILVUS_URI"])
        for n in range(uploads):
            time.sleep(rng.uniform(0, SENSOR_INTERVAL_S))  # land at a random point of the sensor's cycle
            topic = TOPICS[n % len(TOPICS)]
            name = f"note-{n:03d}.txt"
            text = f"A field note on {topic}. " * 3 + f"Observation {n}: {topic} was recorded in detail today."
            landed = time.time()
            (home / "uploads" / name).write_text(text, encoding="utf-8")
            day = time.strftime("%Y-%m-%d", time.gmtime(landed))
            while not returned_by_search(client, embedder, f"field note on {topic}", name):
                if time.time() - landed > 300:
                    raise TimeoutError(f"{name} not searchable after 300 s; see {home / 'daemon.log'}")
                time.sleep(0.25)
            found = time.time()
            record, stats = finished_run(day, landed)
            requested = record.create_timestamp.timestamp()
            rows.append(
                {
                    "upload": name,
                    "searchable_s": round(found - landed, 2),
                    "sensor_wait_s": round(requested - landed, 2),
                    "run_start_s": round(stats.start_time - requested, 2),
                    "in_run_until_searchable_s": round(found - stats.start_time, 2),
                    "run_total_s": round(stats.end_time - stats.start_time, 2),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
        client.close()
    return summarise(rows)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def p95(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    parts = ["searchable_s", "sensor_wait_s", "run_start_s", "in_run_until_searchable_s", "run_total_s"]
    return {
        "uploads": len(rows),
        "sensor_interval_s": SENSOR_INTERVAL_S,
        **{f"median_{p}": round(statistics.median(r[p] for r in rows), 2) for p in parts},
        "p95_searchable_s": round(p95([r["searchable_s"] for r in rows]), 2),
        "rows": rows,
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=8)
    parser.add_argument("--home", type=Path, default=REPO / "benchmarks" / ".cache" / "searchable")
    args = parser.parse_args()
    print(json.dumps(measure(args.uploads, args.home), indent=2))
