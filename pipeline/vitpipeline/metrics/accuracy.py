"""Top-1 accuracy as an `evaluate` metric module (loaded by file path, offline)."""

import datasets
import evaluate
import numpy as np


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Fraction of predictions equal to their reference label.",
            citation="",
            inputs_description="predictions, references: integer class ids of equal length",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        p = np.asarray(predictions)
        r = np.asarray(references)
        return {"accuracy": float((p == r).mean()) if len(r) else 0.0}
