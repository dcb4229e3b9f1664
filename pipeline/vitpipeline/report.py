"""`report.html`: one self-contained page a person reads after a run (figures embedded as PNG).

Training and evaluation curves, the confusion matrix as a heat map, the per-class table, the
most confident mistakes as thumbnails, the quarantined files with their reasons and the time
each stage took. Plots are matplotlib's (headless Agg backend); the page needs no network.
Building it is pure: the caller passes the summary and the mistakes' image bytes.
"""

from __future__ import annotations

import base64
import html
import io

MISTAKES = 16  # thumbnails in the grid of most confident mistakes
THUMBNAIL_PX = 112


def most_confident_mistakes(predictions, limit: int = MISTAKES) -> list[dict]:
    """Wrong predictions with a known label, highest score first: path, true, predicted, score."""
    if "true_label" not in predictions:
        return []
    wrong = predictions[
        predictions["true_label"].notna() & (predictions["true_label"] != predictions["predicted_label"])
    ]
    wrong = wrong.sort_values(["score", "path"], ascending=[False, True]).head(limit)
    return [
        {"path": r.path, "true": r.true_label, "predicted": r.predicted_label, "score": float(r.score)}
        for r in wrong.itertuples()
    ]


def thumbnail(data: bytes) -> bytes | None:
    """A small RGB PNG of an image file's bytes; None when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
            img.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            out = io.BytesIO()
            img.save(out, format="PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    plt = _pyplot()

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def curves_figure(history: list[dict]) -> str | None:
    """Loss (training and evaluation) by step, and evaluation accuracy by epoch."""
    plt = _pyplot()
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [h for h in history if "eval_loss" in h or "eval_accuracy" in h]
    if not train and not evals:
        return None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    if train:
        ax_loss.plot(*zip(*train, strict=True), label="training loss", color="tab:blue")
    if any("eval_loss" in h for h in evals):
        ax_loss.plot(
            [h["step"] for h in evals if "eval_loss" in h],
            [h["eval_loss"] for h in evals if "eval_loss" in h],
            "o-",
            label="evaluation loss",
            color="tab:orange",
        )
    ax_loss.set(xlabel="step", ylabel="loss", title="Loss")
    ax_loss.legend()
    accuracy = [(h["epoch"], h["eval_accuracy"]) for h in evals if "eval_accuracy" in h]
    if accuracy:
        ax_acc.plot(*zip(*accuracy, strict=True), "o-", color="tab:green")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Evaluation accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    return _png(fig)


def confusion_figure(matrix: dict) -> str:
    """Counts as a heat map, rows the true class, columns the predicted one."""
    import numpy as np

    plt = _pyplot()

    labels, counts = matrix["labels"], np.asarray(matrix["counts"])
    side = min(12.0, 2.0 + 0.45 * len(labels))
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    shown = ax.imshow(counts, cmap="Blues")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="images")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    if len(labels) <= 30:
        top = counts.max() or 1
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color="white" if n > top / 2 else "black")
    return _png(fig)


def timings_figure(timings: dict) -> str | None:
    plt = _pyplot()
    stages = [(k, v) for k, v in timings.items() if k != "total"]
    if not stages:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(stages)))
    names, seconds = zip(*stages, strict=True)
    ax.barh(names, seconds, color="tab:purple")
    ax.invert_yaxis()
    ax.set(xlabel="seconds", title=f"Time per stage (total {timings.get('total', sum(seconds)):.0f} s)")
    for y, s in enumerate(seconds):
        ax.text(s, y, f" {s:.1f}", va="center", fontsize=8)
    return _png(fig)


def _table(headers: list[str], rows: list[list], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(fig_id: str, png: str | None, caption: str) -> str:
    if png is None:
        return f'<p id="{fig_id}" class="none">{html.escape(caption)}: nothing to plot.</p>'
    return (
        f'<figure id="{fig_id}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { padding: .2rem .7rem; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td:not(:first-child) { font-variant-numeric: tabular-nums; }
figure { margin: .5rem 0; } figure img { max-width: 100%; } figcaption { color: #666; font-size: .85rem; }
.grid { display: flex; flex-wrap: wrap; gap: .6rem; } .grid figure { width: 130px; font-size: .78rem; }
.kpi { display: flex; gap: 2rem; } .kpi div { font-size: 1.4rem; } .kpi span { display: block; font-size: .8rem; color: #666; }
"""


def build(summary: dict, mistakes: list[dict]) -> str:
    """The page for `summary` (as summary.json holds it); `mistakes` as most_confident_mistakes
    gives them, each with `thumbnail` (PNG bytes or None)."""
    m, c = summary.get("metrics", {}), summary["counts"]
    ev = summary.get("evaluation")
    kpis = [
        ("eval accuracy", m.get("accuracy") if summary.get("kind") != "predict" else None),
        ("prediction accuracy", m.get("predictionAccuracy")),
        ("macro F1", m.get("macroF1")),
        ("top-5 accuracy", m.get("top5Accuracy")),
    ]
    parts = [
        f"<h1>vitpipeline run {html.escape(summary['runId'])}</h1>",
        '<div class="kpi">'
        + "".join(f"<div>{v:.4f}<span>{html.escape(k)}</span></div>" for k, v in kpis if v is not None)
        + "</div>",
        _table(
            ["images", "count"],
            [
                ["read", c["read"]],
                ["usable", c["usable"]],
                ["quarantined", c["quarantined"]],
                ["train", c.get("train")],
                ["validation", c.get("validation")],
                ["predicted", c.get("predicted")],
                ["classes", c.get("classes")],
            ],
            "counts",
        ),
    ]
    if summary.get("kind") != "predict":  # a prediction-only run trains nothing
        parts += [
            "<h2>Training</h2>",
            _figure(
                "curves", curves_figure(summary.get("history") or []), "Loss by step and evaluation accuracy by epoch"
            ),
        ]
    parts.append("<h2>Evaluation of the predictions</h2>")
    if ev is None:
        parts.append('<p id="no-evaluation">The predicted images carry no labels: nothing to evaluate.</p>')
    else:
        parts.append(
            _figure(
                "confusion",
                confusion_figure(ev["confusionMatrix"]),
                f"Confusion matrix of {ev['images']} predicted images",
            )
        )
        rows = [
            [name, f"{pc['precision']:.3f}", f"{pc['recall']:.3f}", f"{pc['f1']:.3f}", pc["support"]]
            for name, pc in ev["perClass"].items()
        ]
        rows += [
            ["macro F1", "", "", f"{ev['macroF1']:.3f}", ev["images"]],
            ["weighted F1", "", "", f"{ev['weightedF1']:.3f}", ev["images"]],
        ]
        parts.append(_table(["class", "precision", "recall", "F1", "support"], rows, "per-class"))
    parts.append("<h2>Most confident mistakes</h2>")
    if mistakes:
        cells = []
        for x in mistakes:
            img = (
                (
                    f'<img alt="{html.escape(x["path"])}" src="data:image/png;base64,'
                    f'{base64.b64encode(x["thumbnail"]).decode()}">'
                )
                if x.get("thumbnail")
                else "<div>(unreadable)</div>"
            )
            cells.append(
                f'<figure title="{html.escape(x["path"])}">{img}<figcaption>true <b>{html.escape(x["true"])}</b>'
                f"<br>predicted <b>{html.escape(x['predicted'])}</b> ({x['score']:.2f})</figcaption></figure>"
            )
        parts.append(f'<div class="grid" id="mistakes">{"".join(cells)}</div>')
    else:
        parts.append('<p id="mistakes" class="none">No mistakes among the labelled predictions.</p>')
    parts.append(f"<h2>Quarantined files ({len(summary.get('quarantined', []))})</h2>")
    parts.append(
        _table(["file", "reason"], [[q["path"], q["reason"]] for q in summary.get("quarantined", [])], "quarantined")
    )
    parts.append("<h2>Time per stage</h2>")
    parts.append(_figure("timings", timings_figure(summary.get("timingsSeconds", {})), "Wall time of each stage"))
    links = [(k, summary.get(k)) for k in ("summaryUri", "predictionsUri", "checkpointUri", "model", "driverLogUri")]
    parts.append(_table(["output", "location"], [[k, v] for k, v in links if v], "outputs"))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>vitpipeline {html.escape(summary['runId'])}</title><style>{STYLE}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
