"""A prediction-only run's parts (rules/parts.py) and how it finds its model and labels."""

from __future__ import annotations

import pyarrow as pa
import pytest
from ray.train.huggingface.transformers import RayTrainReportCallback

from vitpipeline.config import ConfigError, parse_config
from vitpipeline.rules.parts import fingerprint, plan_parts, resume, true_label
from vitpipeline.rules.resources import plan_resources
from vitpipeline.stages.predict import SCHEMA, Totals, part_table
from vitpipeline.storage.models import CHECKPOINT_FOLDER, model_folder

KEY = fingerprint("s3://m/ckpt", {"height": 224, "width": 224}, {"minSide": 8}, 5)
ITEMS = [(f"s3://b/img/{i:03d}.jpg", "cat" if i % 2 else None) for i in range(23)]


def test_parts_cut_the_listing_in_order_and_cover_it_once():
    parts = plan_parts(ITEMS, 10, KEY)
    assert [len(p.items) for p in parts] == [10, 10, 3]
    assert [x for p in parts for x in p.items] == ITEMS
    assert [p.name[:10] for p in parts] == ["part-00000", "part-00001", "part-00002"]
    assert len({p.name for p in parts}) == 3


def test_a_part_is_named_by_its_images_labels_and_model():
    same = plan_parts(ITEMS, 10, KEY)
    assert [p.name for p in same] == [p.name for p in plan_parts(list(ITEMS), 10, KEY)]
    other_model = plan_parts(ITEMS, 10, fingerprint("s3://m/other", {"height": 224, "width": 224}, {"minSide": 8}, 5))
    other_k = plan_parts(ITEMS, 10, fingerprint("s3://m/ckpt", {"height": 224, "width": 224}, {"minSide": 8}, 3))
    relabeled = plan_parts([ITEMS[0][:1] + ("dog",), *ITEMS[1:]], 10, KEY)
    assert not {p.name for p in same} & {p.name for p in other_model + other_k}
    # Only the part whose image changed its label gets a new name.
    assert [a.name == b.name for a, b in zip(same, relabeled, strict=True)] == [False, True, True]


def test_resume_skips_written_parts_and_names_stale_ones():
    parts = plan_parts(ITEMS, 10, KEY)
    old = plan_parts(ITEMS, 10, fingerprint("s3://m/old", {}, {}, 5))[2].name
    r = resume(parts, [parts[1].name, old, "_SUCCESS", "notes.txt"])
    assert [p.index for p in r.done] == [1] and [p.index for p in r.todo] == [0, 2]
    assert r.stale == [old]  # files that are not parts at all are left alone
    assert resume(parts, []).todo == parts


def test_true_label_only_where_it_names_a_class():
    assert true_label("cat", {"cat", "dog"}) == "cat"
    assert true_label("2026-12-01", {"cat", "dog"}) is None
    assert true_label(None, {"cat"}) is None


def test_a_checkpoint_uri_is_found_in_its_checkpoint_folder():
    assert CHECKPOINT_FOLDER == RayTrainReportCallback.CHECKPOINT_NAME
    assert model_folder({"config.json", "model.safetensors"}) == ""
    assert model_folder({"checkpoint/config.json", "checkpoint/model.safetensors", "extra.json"}) == "checkpoint"
    assert model_folder({"optimizer.pt", "trainer_state.json"}) is None


def row(path, true="cat", predicted="cat", score=0.9, reason="ok"):
    ok = reason == "ok"
    return {
        "path": path,
        "true_label": true,
        "predicted_label": predicted if ok else None,
        "score": score if ok else float("nan"),
        "top_labels": [predicted] if ok else [],
        "top_scores": [score] if ok else [],
        "reason": reason,
    }


def test_a_part_holds_each_image_once_sorted_with_nulls_for_unknown_labels():
    # A batch whose labels are all unknown can come back from Ray as a column of NaNs.
    b0 = pa.Table.from_pylist([row("a", true=float("nan"))])
    b1 = pa.Table.from_pylist([row("b"), row("c", reason="corrupt image")])
    table = part_table([b0, b1, b1])
    assert table.schema == SCHEMA
    assert table.column("path").to_pylist() == ["a", "b", "c"]
    assert table.column("true_label").to_pylist() == [None, "cat", "cat"]


def test_totals_count_every_image_once_and_keep_the_most_confident_mistakes():
    totals = Totals(keep_mistakes=2)
    totals.add(part_table([pa.Table.from_pylist([row("a"), row("b", predicted="dog", score=0.6)])]))
    totals.add(
        part_table(
            [
                pa.Table.from_pylist(
                    [
                        row("c", predicted="dog", score=0.8),
                        row("d", predicted="dog", score=0.7, true=None),  # unknown: not a mistake
                        row("e", reason="too small"),
                        row("f", predicted="dog", score=0.5),
                    ]
                )
            ]
        )
    )
    assert totals.predicted == 5 and totals.quarantined == [{"path": "e", "reason": "too small"}]
    assert totals.labeled["true"] == ["cat"] * 4 and totals.labeled["predicted"] == ["cat", "dog", "dog", "dog"]
    assert [m["path"] for m in totals.mistakes] == ["c", "b"]


BASE = {"runId": "p", "model": {"name": "s3://mod/ckpt"}, "output": {"uri": "s3://out/runs"}}


def test_a_config_is_a_training_run_or_a_prediction_run():
    predict = parse_config({**BASE, "inference": {"sources": [{"uri": "s3://bkt/new"}]}})
    assert predict.predicts_only
    train = parse_config({**BASE, "data": {"sources": [{"uri": "s3://bkt/img"}]}})
    assert not train.predicts_only
    with pytest.raises(ConfigError, match=r"^data: required for a training run"):
        parse_config(BASE)
    for section, value in (("training", {"epochs": 1}), ("split", {"seed": 1})):
        with pytest.raises(ConfigError, match=rf"^{section}: a prediction-only run \(no data\) does not train"):
            parse_config({**BASE, "inference": {"sources": [{"uri": "s3://bkt/new"}]}, section: value})


def test_a_prediction_run_plans_no_training_workers():
    config = parse_config({**BASE, "inference": {"sources": [{"uri": "s3://bkt/new"}]}})
    plan = plan_resources({"CPU": 1.0}, config)  # a training run's 2 default workers would not fit
    assert plan.train_workers == 0 and plan.infer.actors == 1
