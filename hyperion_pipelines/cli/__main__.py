"""``python -m hyperion_pipelines.cli``: the ``hyperion`` command, as tests and benchmarks start it."""

import sys

from hyperion_pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main())
