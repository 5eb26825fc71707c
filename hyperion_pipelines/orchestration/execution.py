"""How steps execute: retries, backfill sizing, concurrency pools."""

import warnings

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Backoff,
    BetaWarning,
    DagsterInstance,
    DagsterRunStatus,
    ExecutorDefinition,
    Failure,
    Jitter,
    RetryPolicy,
    in_process_executor,
)

from hyperion_pipelines.settings import Settings, SettingsError

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


#: Celery settings of the executor and of every worker (``hyperion worker``). A step is acknowledged
#: when it ends, not when a worker takes it: a worker killed mid-step (OOM killer, a lost host)
#: leaves its step with the broker, which hands it to another worker, and steps are idempotent
#: (deterministic ids, upsert before delete). A worker takes one step at a time: a prefetched step
#: would wait behind a long one while another worker idles.
CELERY_CONFIG = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
}


def celery_config_module(settings: Settings) -> str:
    """The ``dagster_celery_config`` module dagster-celery's worker app reads its settings from."""
    values = {"broker_url": settings.celery_broker, "result_backend": settings.celery_backend, **CELERY_CONFIG}
    return "".join(f"{key} = {value!r}\n" for key, value in values.items())


def run_executor(settings: Settings) -> ExecutorDefinition:
    """The executor of every job: in the run's process, or each step a Celery task that any
    worker on any host takes (``hyperion worker``). Workers share the instance (PostgreSQL), the
    Milvus server, the state database and, through ``HYPERION_STEP_OUTPUT_URI`` and the blob
    store, the files steps hand each other."""
    if settings.executor == "in_process":
        return RUN_EXECUTOR
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:
        raise SettingsError(
            "HYPERION_EXECUTOR=celery needs dagster-celery: pip install 'hyperion-pipelines[celery]'"
        ) from exc
    return celery_executor.configured(
        {"broker": settings.celery_broker, "backend": settings.celery_backend, "config_source": CELERY_CONFIG},
        name="celery_executor",
    )


def stop_if_terminated(context: AssetExecutionContext) -> None:
    """Called first by every step with a retry policy. Terminating a run interrupts its running
    step, and the in-process executor treats that interrupt as a failure its retry policy
    retries (dagster-io/dagster#15026), so the canceled run would carry on to the end. A step
    attempt that starts in a canceling run fails without retries instead, and the run ends
    CANCELED. See also :func:`stop_if_run_is_over`."""
    stop_if_run_is_over(context.instance, context.run.run_id)


#: Run states in which no step of the run may write: terminated, or over.
_STEPS_REFUSED = (
    DagsterRunStatus.CANCELING,
    DagsterRunStatus.CANCELED,
    DagsterRunStatus.FAILURE,
    DagsterRunStatus.SUCCESS,
)


def stop_if_run_is_over(instance: DagsterInstance, run_id: str) -> None:
    """A step of a run that is over does not run, nor hand on its output. On Celery a step's task
    outlives its run when the broker restarts mid-step: the run fails, the task is delivered
    again (late acknowledgement) and would write the day's step output under a run that has
    ended, replacing the output a re-run of the day is reading (seen in test_celery)."""
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status in _STEPS_REFUSED:
        state = "was terminated" if run.status in _STEPS_REFUSED[:2] else f"is over ({run.status.value})"
        raise Failure(description=f"the run {state}: this step does not run", allow_retries=False)
