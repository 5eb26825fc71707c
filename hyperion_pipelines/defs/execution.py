"""How steps execute: retries, backfill sizing, concurrency pools."""

import warnings

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Backoff,
    BetaWarning,
    DagsterRunStatus,
    Failure,
    Jitter,
    RetryPolicy,
    in_process_executor,
)

# Steps that talk to a remote service (backend API, embedding service, Milvus) retry transient
# faults; the jitter spreads retries of many partitions so they do not hit the service together.
REMOTE_RETRY = RetryPolicy(max_retries=3, delay=2.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)

# BackfillPolicy is marked beta on @asset; it is the documented way to size backfill runs, and the
# warning would repeat for every asset on every code-location load.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy` of function `asset`", category=BetaWarning)

# A backfill runs one upload day per run: every asset works on exactly one day (the index sync
# compares that day's chunks with that day's entries), a failed day is re-run alone, and days
# spread over the run queue instead of one long run holding the Milvus writer.
ONE_DAY_PER_RUN = BackfillPolicy.multi_run(max_partitions_per_run=1)
# Concurrency pools bound the expensive shared work across runs. Their limits are instance
# settings (dagster.yaml `concurrency: pools:`); the embedded dagster.yaml allows one step each.
EMBEDDING_POOL = "hyperion_embedding"
MILVUS_WRITE_POOL = "hyperion_milvus_writes"

# Every step of a run executes in the run's own process. The steps form a chain, so running them
# in parallel processes gains nothing, while each step process would import the code location,
# PyTorch and the model again: measured with the daemon, that was most of an upload's wait to
# become searchable (benchmarks/time_to_searchable.py).
RUN_EXECUTOR = in_process_executor


def stop_if_terminated(context: AssetExecutionContext) -> None:
    """Called first by every step with a retry policy. Terminating a run interrupts its running
    step, and the in-process executor treats that interrupt as a failure its retry policy
    retries (dagster-io/dagster#15026), so the canceled run would carry on to the end. A step
    attempt that starts in a canceling run fails without retries instead, and the run ends
    CANCELED."""
    run = context.instance.get_run_by_id(context.run.run_id)
    if run is not None and run.status in (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED):
        raise Failure(description="the run was terminated", allow_retries=False)
