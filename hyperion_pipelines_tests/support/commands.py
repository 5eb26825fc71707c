"""The command line run as a user runs it, in a child process, for its JSON answer."""

from __future__ import annotations

import json
import subprocess
import sys

from ..conftest import REPO


def quarantine_cli(*args: str) -> list[dict]:
    completed = subprocess.run(
        [sys.executable, "-m", "hyperion_pipelines.cli", "quarantine", "--json", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return json.loads(completed.stdout)
