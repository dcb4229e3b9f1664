"""The evaluation in summary.json, checked against figures worked out by hand."""

from __future__ import annotations

import pytest

from vitpipeline.metrics.evaluation import evaluate, history

CLASSES = ["cat", "dog", "fox"]


def test_per_class_figures_confusion_matrix_and_f1_averages():
    true = ["cat", "cat", "cat", "dog", "dog", "fox", None]
    pred = ["cat", "cat", "dog", "dog", "cat", "fox", "fox"]  # the unlabeled image is left out
    ev = evaluate(true, pred, CLASSES)
    assert ev["images"] == 6 and ev["accuracy"] == pytest.approx(4 / 6)
    # cat: 2 of 3 predicted right (P 2/3, R 2/3); dog: 1 of 2 (P 1/2, R 1/2); fox: 1 of 1.
    assert ev["perClass"]["cat"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert ev["perClass"]["dog"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert ev["perClass"]["fox"]["f1"] == 1.0
    assert ev["macroF1"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert ev["weightedF1"] == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 1) / 6)
    assert ev["confusionMatrix"] == {"labels": CLASSES, "counts": [[2, 1, 0], [1, 1, 0], [0, 0, 1]]}
    assert "top5Accuracy" not in ev  # fewer than five classes


def test_a_class_never_predicted_or_never_seen_is_still_listed():
    ev = evaluate(["cat", "cat"], ["cat", "cat"], CLASSES)
    assert ev["perClass"]["fox"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert ev["confusionMatrix"]["counts"][2] == [0, 0, 0]


def test_top5_accuracy_from_each_images_top_labels():
    classes = [f"c{i}" for i in range(7)]
    true = ["c0", "c1", "c2"]
    top = [
        ["c3", "c0", "c4", "c5", "c6"],  # right within 5
        ["c1", "c0", "c2", "c3", "c4"],  # right at 1
        ["c0", "c1", "c3", "c4", "c5"],
    ]  # c2 not among the five
    scores = [[0.4, 0.2, 0.1, 0.1, 0.1], [0.5, 0.2, 0.1, 0.1, 0.05], [0.3, 0.2, 0.2, 0.1, 0.1]]
    ev = evaluate(true, [t[0] for t in top], classes, top, scores)
    assert ev["accuracy"] == pytest.approx(1 / 3)
    assert ev["top5Accuracy"] == pytest.approx(2 / 3)


def test_no_known_label_means_no_evaluation():
    assert evaluate([None, None], ["cat", "dog"], CLASSES) is None


def test_history_keeps_losses_and_eval_metrics_with_step_and_epoch():
    log = [
        {"loss": 2.0, "learning_rate": 1e-4, "grad_norm": 3.0, "epoch": 0.7, "step": 5},
        {"eval_loss": 1.5, "eval_accuracy": 0.6, "eval_runtime": 2.0, "epoch": 0.9, "step": 10},
        {"loss": 1.8, "epoch": 0.9, "step": 10},
        {"train_runtime": 30.0, "train_loss": 1.9, "epoch": 1.0, "step": 10},  # the end-of-run line
    ]
    assert history(log, steps_per_epoch=10) == [
        {"step": 5, "epoch": 0.5, "loss": 2.0, "learning_rate": 1e-4, "grad_norm": 3.0},
        {"step": 10, "epoch": 1.0, "loss": 1.8},
        {"step": 10, "epoch": 1.0, "eval_loss": 1.5, "eval_accuracy": 0.6},
    ]


def test_top_k_defaults_to_five_or_the_class_count_and_refuses_more_than_there_are():
    from vitpipeline.config import parse_config
    from vitpipeline.errors import InputError
    from vitpipeline.runner import top_k_of

    base = {"runId": "r", "data": {"sources": [{"uri": "s3://bkt/d"}]}, "output": {"uri": "s3://bkt/o"}}
    assert top_k_of(parse_config(base), 10) == 5
    assert top_k_of(parse_config(base), 3) == 3
    three = parse_config({**base, "inference": {"topK": 3}})
    assert top_k_of(three, 3) == 3
    with pytest.raises(InputError, match=r"^inference.topK: 3 is more than the 2 classes the model predicts$"):
        top_k_of(three, 2)
