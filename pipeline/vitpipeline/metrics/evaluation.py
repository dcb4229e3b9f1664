"""The evaluation a run's summary carries, from its predictions (scikit-learn's metrics)."""

from __future__ import annotations

import numpy as np

TOP_K_ACCURACY = 5  # reported when the run has at least this many classes


def evaluate(true_labels, predicted_labels, class_names: list[str], top_labels=None, top_scores=None) -> dict:
    """Per-class precision/recall/F1/support, macro and weighted F1, accuracy, the confusion
    matrix (rows true, columns predicted, in `class_names` order) and, with 5 or more classes
    and each image's top-k labels and scores, top-5 accuracy. Images without a true label
    are left out; None when no image has one."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, top_k_accuracy_score

    keep = [i for i, t in enumerate(true_labels) if t is not None]
    if not keep:
        return None
    y_true = [true_labels[i] for i in keep]
    y_pred = [predicted_labels[i] for i in keep]
    report = classification_report(y_true, y_pred, labels=class_names, output_dict=True, zero_division=0)
    out = {
        "images": len(keep),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macroF1": float(report["macro avg"]["f1-score"]),
        "weightedF1": float(report["weighted avg"]["f1-score"]),
        "perClass": {
            c: {
                "precision": float(report[c]["precision"]),
                "recall": float(report[c]["recall"]),
                "f1": float(report[c]["f1-score"]),
                "support": int(report[c]["support"]),
            }
            for c in class_names
        },
        "confusionMatrix": {
            "labels": list(class_names),
            "counts": confusion_matrix(y_true, y_pred, labels=class_names).tolist(),
        },
    }
    if len(class_names) >= TOP_K_ACCURACY and top_labels is not None and len(top_labels[keep[0]]) >= TOP_K_ACCURACY:
        index = {c: i for i, c in enumerate(class_names)}
        out[f"top{TOP_K_ACCURACY}Accuracy"] = float(
            top_k_accuracy_score(
                [index[t] for t in y_true],
                _score_matrix(top_labels, top_scores, keep, index),
                k=TOP_K_ACCURACY,
                labels=list(range(len(class_names))),
            )
        )
    return out


def _score_matrix(top_labels, top_scores, rows, index: dict[str, int]) -> np.ndarray:
    """Each image's kept top-k scores in a full (images × classes) matrix, 0 elsewhere: every
    softmax score is positive, so the matrix ranks the kept labels exactly as the model did."""
    scores = np.zeros((len(rows), len(index)), dtype=np.float64)
    for r, i in enumerate(rows):
        for label, score in zip(top_labels[i], top_scores[i], strict=True):
            scores[r, index[label]] = score
    return scores


def history(log_history: list[dict], steps_per_epoch: int) -> list[dict]:
    """The Trainer's log: one entry per training log or evaluation, with its step and epoch
    (counted from steps: the Trainer's own epoch drifts on streamed data), in step order."""
    out = []
    for entry in log_history:
        step = int(entry.get("step", 0))
        values = {
            k: float(v)
            for k, v in entry.items()
            if k in ("loss", "learning_rate", "grad_norm")
            or (k.startswith("eval_") and k not in ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second"))
        }
        if values:
            out.append({"step": step, "epoch": round(step / max(1, steps_per_epoch), 3), **values})
    return sorted(out, key=lambda e: (e["step"], "eval_loss" in e))
