"""``hyperion pipelines``: the declared pipelines and where each is declared."""

from __future__ import annotations

import argparse
import json


def cmd_pipelines(args: argparse.Namespace) -> int:
    from hyperion_pipelines.definitions import declared_pipelines, pipeline_tree

    rows = []
    for pipeline in declared_pipelines(pipeline_tree()):
        spec = pipeline.spec
        source = spec.source
        rows.append(
            {
                "name": spec.name,
                "template": pipeline.declaration.template,
                "source": source.kind,
                "from": getattr(source, "path", None) or getattr(source, "base_url", None),
                "embedding": spec.embedding.kind,
                "alias": spec.index.alias,
                "asset_keys": "/".join([*spec.key_prefix, "<asset>"]),
                "declared_in": str(pipeline.yaml_path),
            }
        )
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        print(f"{row['name']}  ({row['template']} template, declared in {row['declared_in']})")
        print(f"  source {row['source']}: {row['from']}")
        print(f"  embedding {row['embedding']}; alias {row['alias']}; asset keys {row['asset_keys']}")
    return 0
