"""report.html from a summary: every section present, figures real PNGs, text escaped."""

from __future__ import annotations

import base64
import io
import re

import pandas as pd
from PIL import Image

from vitpipeline import report
from vitpipeline.metrics.evaluation import evaluate

CLASSES = ["cat", "dog", "fox"]


def _png_bytes(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), colour).save(buf, format="JPEG")
    return buf.getvalue()


def _summary():
    true = ["cat", "cat", "dog", "fox", "fox"]
    pred = ["cat", "dog", "dog", "fox", "cat"]
    return {
        "runId": "r<1>",
        "counts": {"read": 6, "usable": 5, "quarantined": 1, "train": 3, "validation": 5, "predicted": 5, "classes": 3},
        "metrics": {"accuracy": 0.6, "predictionAccuracy": 0.6, "macroF1": 0.61},
        "evaluation": evaluate(true, pred, CLASSES),
        "history": [
            {"step": 1, "epoch": 0.5, "loss": 2.0},
            {"step": 2, "epoch": 1.0, "loss": 1.5},
            {"step": 2, "epoch": 1.0, "eval_loss": 1.6, "eval_accuracy": 0.6},
        ],
        "quarantined": [{"path": "/d/bad <x>.jpg", "reason": "corrupt image"}],
        "timingsSeconds": {"ingest": 1.0, "prepare": 2.0, "train": 9.0, "infer": 1.5, "total": 14.0},
        "summaryUri": "/o/r/summary.json",
    }


def _images(page: str) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(b))) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    ]


def test_the_page_has_every_section_with_real_figures():
    predictions = pd.DataFrame(
        {
            "path": ["/d/a.jpg", "/d/b.jpg", "/d/c.jpg"],
            "true_label": ["cat", "fox", "dog"],
            "predicted_label": ["dog", "cat", "dog"],
            "score": [0.7, 0.9, 0.99],
        }
    )
    mistakes = report.most_confident_mistakes(predictions)
    assert [(m["path"], m["score"]) for m in mistakes] == [("/d/b.jpg", 0.9), ("/d/a.jpg", 0.7)]  # right one left out
    for m, colour in zip(mistakes, ("red", "blue"), strict=True):
        m["thumbnail"] = report.thumbnail(_png_bytes(colour))
    page = report.build(_summary(), mistakes)
    for section in (
        'id="curves"',
        'id="confusion"',
        'id="per-class"',
        'id="mistakes"',
        'id="quarantined"',
        'id="timings"',
        'id="counts"',
    ):
        assert section in page, section
    images = _images(page)
    curves, confusion, first, second, timings = images  # in page order
    assert all(min(i.size) >= 200 for i in (curves, confusion, timings))
    assert max(first.size) == max(second.size) == report.THUMBNAIL_PX
    assert first.convert("RGB").getpixel((5, 5))[0] > 200 > second.convert("RGB").getpixel((5, 5))[0]
    assert "r&lt;1&gt;" in page and "bad &lt;x&gt;.jpg" in page and "<x>" not in page
    assert "<td>macro F1</td>" in page and "<td>fox</td><td>1.000</td><td>0.500</td>" in page


def test_without_labels_or_mistakes_the_page_says_so():
    summary = {**_summary(), "evaluation": None, "history": []}
    page = report.build(summary, [])
    assert 'id="no-evaluation"' in page and "No mistakes" in page and "nothing to plot" in page
    assert report.most_confident_mistakes(pd.DataFrame({"path": ["a"], "predicted_label": ["x"], "score": [1.0]})) == []


def test_an_unreadable_image_gets_no_thumbnail():
    assert report.thumbnail(b"not an image") is None
