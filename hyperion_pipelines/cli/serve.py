"""``hyperion serve``: the live index over HTTP (the search API of ``hyperion_pipelines/serving``)."""

from __future__ import annotations

import argparse
import os

from hyperion_pipelines.cli.common import MAX_K, CommandError, declared_pipeline, notice
from hyperion_pipelines.settings import Settings

#: Addresses ``hyperion serve`` may listen on without a token: this machine only.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SERVE_TOKEN_ENV = "HYPERION_SERVE_TOKEN"


def cmd_serve(args: argparse.Namespace) -> int:
    """The live index over HTTP until interrupted (see ``hyperion_pipelines/serving``)."""
    import uvicorn

    from hyperion_pipelines.serving.app import build_app
    from hyperion_pipelines.serving.live_index import LiveSearch

    token = os.environ.get(SERVE_TOKEN_ENV, "").strip() or None
    if args.host not in LOOPBACK_HOSTS and token is None:
        raise CommandError(
            f"serving on {args.host} lets other machines search the index: set {SERVE_TOKEN_ENV} to a token that "
            "clients send as 'Authorization: Bearer <token>', or serve on 127.0.0.1"
        )
    if not 1 <= args.max_k <= MAX_K:
        raise CommandError(f"--max-k must be between 1 and {MAX_K}")
    spec = declared_pipeline(args)
    live = LiveSearch(Settings.from_env(), spec, idle_release_s=args.idle_release_s)
    about = {"pipeline": spec.name, "alias": spec.index.alias, "model": live.embedder.identity.model_name}
    app = build_app(live, token=token, max_k=args.max_k, about=about)
    where = "embedded index, let go after each burst of requests" if live.embedded else "Milvus server"
    notice(f"serving '{spec.name}' on http://{args.host}:{args.port} ({where}); POST /search, GET /openapi.json")
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        live.close()
    return 0
