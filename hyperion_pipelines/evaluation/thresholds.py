"""Compare evaluation metrics with the pipeline's warn and fail thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hyperion_pipelines.evaluation.metrics import EvaluationResult
from hyperion_pipelines.spec import EvaluationSpec

Level = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Breach:
    metric: str
    value: float
    threshold: float
    level: Level


@dataclass(frozen=True)
class Assessment:
    level: Level
    breaches: list[Breach]

    def summary(self) -> str:
        if not self.breaches:
            return "every metric is at or above its warn threshold"
        return "; ".join(f"{b.metric} {b.value:.3f} below {b.level} threshold {b.threshold:.3f}" for b in self.breaches)


def assess(result: EvaluationResult, spec: EvaluationSpec) -> Assessment:
    breaches = []
    for metric, value, thresholds in (
        (f"recall@{result.k}", result.recall_at_k, spec.recall_at_k),
        ("mrr", result.mrr, spec.mrr),
        (f"ndcg@{result.k}", result.ndcg_at_k, spec.ndcg_at_k),
    ):
        if value < thresholds.fail:
            breaches.append(Breach(metric, value, thresholds.fail, "fail"))
        elif value < thresholds.warn:
            breaches.append(Breach(metric, value, thresholds.warn, "warn"))
    levels = {b.level for b in breaches}
    return Assessment(level="fail" if "fail" in levels else "warn" if levels else "pass", breaches=breaches)
