"""The Dagster instance settings ``hyperion`` writes to ``DAGSTER_HOME/dagster.yaml`` when that has none."""

# The same settings as the repository's dagster.yaml (a test keeps the two equal).
EMBEDDED_INSTANCE_YAML = """\
telemetry:
  enabled: false
concurrency:
  runs:
    # milvus-lite accepts one writing process per database file: queue runs one at a time.
    max_concurrent_runs: 1
    # Never two runs of one upload day at once (sensor, schedule, backfill): the later listing
    # must not be undone by the earlier one's index sync.
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    # hyperion_embedding and hyperion_milvus_writes: one step of each at a time across runs
    # (the CPU is shared by embedding; Milvus takes one writer).
    default_limit: 1
run_queue:
  # The daemon takes queued runs every second (Dagster's default is 5): part of how long an
  # upload waits to become searchable (benchmarks/time_to_searchable.py).
  dequeue_interval_seconds: 1
run_launcher:
  # Each run in its own process, whose id is kept in the run's tags for run monitoring.
  module: hyperion_pipelines.instance.run_launcher
  class: LocalRunLauncher
run_monitoring:
  # Marks runs whose worker died (OOM killer, kill -9) as failed, and enforces each job's
  # dagster/max_runtime tag. Failed runs are not resumed in place: run_retries re-executes them.
  enabled: true
  poll_interval_seconds: 10
  max_resume_run_attempts: 0
  # A run whose worker died while holding a pool slot gives it back this long after it is marked
  # failed.
  free_slots_after_run_end_seconds: 30
run_retries:
  # A run whose worker crashed is run again once; failing steps already retry (RetryPolicy), so
  # a run that failed in its own code is not re-run but alerted.
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
"""
