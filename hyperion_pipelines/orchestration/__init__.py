"""The Dagster layer: partitions, the asset graph built from a pipeline spec, resources, jobs."""

import warnings

from dagster import BetaWarning

# Owners of jobs, schedules and sensors are a beta parameter in Dagster 1.13 (owners of assets are
# not): said once here rather than as a warning per definition each time the code location loads.
warnings.filterwarnings("ignore", message=r"Parameter `owners` of ", category=BetaWarning)
