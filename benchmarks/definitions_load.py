"""How long the code location takes to load as declared pipelines are added.

    .venv/bin/python benchmarks/definitions_load.py --pipelines 1 5 20

Each count gets a throwaway Dagster project whose defs folder holds that many ``defs.yaml``
files (templates in turn, each with its own folder and alias). Loading means what ``dagster dev``
and the code server do: validate every declaration, build every pipeline's assets, checks, jobs,
sensors and schedules, and resolve the repository. Prints one row per count and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from dagster import BetaWarning, Definitions, PreviewWarning
from dagster.components.testing import create_defs_folder_sandbox

from hyperion_pipelines.components import DocumentPipeline
from hyperion_pipelines.components.declaration import TEMPLATES
from hyperion_pipelines.components.document_pipeline import COMPONENT_TYPE
from hyperion_pipelines.definitions import declared_pipelines
from hyperion_pipelines.orchestration.assembly import platform_definitions
from hyperion_pipelines.settings import Settings


def load_seconds(count: int, settings: Settings, repeats: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as scratch, create_defs_folder_sandbox() as sandbox:
        for n in range(count):
            folder = Path(scratch) / f"uploads_{n}"
            folder.mkdir()
            attributes = {
                "name": f"pipeline_{n}",
                "template": TEMPLATES[n % len(TEMPLATES)],
                **({"source": {"kind": "uploads_folder", "path": str(folder)}} if n % 3 != 1 else {}),
            }
            sandbox.scaffold_component(
                DocumentPipeline,
                defs_path=f"pipeline_{n}",
                defs_yaml_contents={"type": COMPONENT_TYPE, "attributes": attributes},
            )
        timings, assets = [], 0
        for _ in range(repeats):
            started = time.perf_counter()
            with sandbox.build_component_tree() as tree:
                specs = [p.spec for p in declared_pipelines(tree)]
                defs = Definitions.merge(tree.build_defs(), platform_definitions(settings, specs))
                assets = len(list(defs.resolve_asset_graph().get_all_asset_keys()))
                defs.get_repository_def()
            timings.append(time.perf_counter() - started)
        return statistics.median(timings), assets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="benchmarks/results/definitions_load.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore", BetaWarning)  # component loading uses beta and preview APIs
    warnings.simplefilter("ignore", PreviewWarning)
    with tempfile.TemporaryDirectory() as home:
        os.environ["HYPERION_HOME"] = home
        settings = Settings.from_env()
        rows = []
        for count in args.pipelines:
            seconds, assets = load_seconds(count, settings, args.repeats)
            rows.append({"pipelines": count, "assets": assets, "load_s": round(seconds, 3)})
    base = rows[0]["load_s"] / rows[0]["pipelines"]
    print(f"{'pipelines':>9} {'assets':>6} {'load s':>7} {'s/pipeline':>10} {'vs first, per pipeline':>22}")
    for row in rows:
        per = row["load_s"] / row["pipelines"]
        print(f"{row['pipelines']:>9} {row['assets']:>6} {row['load_s']:>7.2f} {per:>10.3f} {per / base:>22.2f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
