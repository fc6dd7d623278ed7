"""The Markdown page ``cv.md`` of a cross-validation, rendered from its ``cv.json`` document."""

from __future__ import annotations

from typing import Any


def format_cv_report(document: dict[str, Any]) -> str:
    """Render ``cv.json`` as the Markdown page ``cv.md``: settings, per-fold table, mean and buckets."""
    settings = document["settings"]
    mean, pooled = document["mean"], document["pooled"]
    if settings["fine_tune_layers"] and settings["fine_tune_epochs"]:
        # Streamed datasets fine-tune over images, whatever the --fine-tune-on setting.
        on_maps = settings.get("fine_tune_on", "images") == "maps" and document.get("input_path") != "tf.data stream"
        phase_two = (
            f"fine-tuning of the last {settings['fine_tune_layers']} layers on {'cached maps' if on_maps else 'images'} "
            f"for up to {settings['fine_tune_epochs']} epochs"
        )
    else:
        phase_two = "no fine-tuning"
    if settings.get("count_weighting", "none") != "none":
        phase_two += f", sample weights {settings['count_weighting']} of the count frequency"
    if settings.get("mosaic", 0.0) > 0 and settings["fine_tune_layers"] and settings["fine_tune_epochs"]:
        phase_two += f", phase 2 mosaics of 4 half-size photos, {settings['mosaic']:g} per training photo"
    if settings.get("quadrants", 0) > 0 and settings["fine_tune_layers"] and settings["fine_tune_epochs"]:
        phase_two += f", phase 2 quadrant crops, {settings['quadrants']} per training photo"
    lines = [
        f"# {document['folds']}-fold cross-validation",
        "",
        f"MobileNetV2 alpha {settings['alpha']} at {settings['image_size']}x{settings['image_size']}, loss {settings['loss']}, "
        f"target {settings['target']}, {phase_two}, {document['images']} images of {settings['data_dir']}.",
        "",
        document["method"] + ".",
        "",
    ]
    data = document.get("data") or {}
    skipped = data.get("skipped", 0)
    if skipped:
        messages = (data.get("skipped_rows") or [])[:5]
        noun = "row or image" if skipped == 1 else "rows or images"
        lines += [f"Skipped {skipped} {noun}:", ""]
        lines += [f"- {message}" for message in messages]
        if skipped > len(messages):
            lines.append(f"- {skipped - len(messages)} more, in cv.json (data.skipped_rows lists up to 20)")
        lines.append("")
    lines += [
        f"Mean over folds: RMSE {mean['rmse']['mean']:.3f} +- {mean['rmse']['std']:.3f}, MAE {mean['mae']['mean']:.3f} +- "
        f"{mean['mae']['std']:.3f}, bias {mean['bias']['mean']:+.3f} +- {mean['bias']['std']:.3f} faces. "
        f"Pooled out-of-fold: RMSE {pooled['rmse']:.3f}, MAE {pooled['mae']:.3f}, bias {pooled['bias']:+.3f}.",
        "",
    ]
    int8 = document.get("int8")
    header = "| fold | images | RMSE | MAE | bias | phase 1 epochs | fine-tuned |" + (" int8 RMSE | int8 / float |" if int8 else "") + " seconds |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for row in document["folds_detail"]:
        cells = [str(row["fold"]), str(row["images"]), f"{row['rmse']:.3f}", f"{row['mae']:.3f}", f"{row['bias']:+.3f}",
                 str(row["phase1_epochs"]), "yes" if row["fine_tuned"] else "no"]
        if int8:
            cells += [_number(row["int8"]["rmse"]), _number(row["int8_rmse_ratio"])]
        cells.append(f"{row['seconds']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")

    tiles = document.get("tiles")
    extra_header = ""
    if int8:
        extra_header += " int8 RMSE | int8 bias |"
    if tiles:
        extra_header += " tiles RMSE | tiles bias |"
    lines += ["", "Out-of-fold errors by true count:", "", "| faces | images | RMSE | MAE | bias |" + extra_header]
    lines.append("|---|---|---|---|---|" + "---|" * extra_header.count("|"))
    for position, row in enumerate(document["buckets"]):
        cells = [row["bucket"], str(row["images"])] + [_number(row[key], signed=key == "bias") for key in ("rmse", "mae", "bias")]
        for other in (int8, tiles):
            if other:
                cells += [_number(other["buckets"][position]["rmse"]), _number(other["buckets"][position]["bias"], signed=True)]
        lines.append("| " + " | ".join(cells) + " |")
    if "predicted_buckets" in document:
        lines += [
            "",
            "Out-of-fold errors by predicted count, rounded. A model fitted to the squared error shrinks its counts toward "
            "the mean where it is unsure, so grouped by true count it undercounts the largest counts. Grouped by its own "
            "count, the bias shows whether a count the model gives can be taken at its word:",
            "",
            "| predicted faces | images | RMSE | MAE | bias |",
            "|---|---|---|---|---|",
        ]
        for row in document["predicted_buckets"]:
            cells = [row["bucket"], str(row["images"])] + [_number(row[key], signed=key == "bias") for key in ("rmse", "mae", "bias")]
            lines.append("| " + " | ".join(cells) + " |")
    if tiles:
        tiles_mean = tiles["mean"]
        lines += ["", f"Counted by tiles ({tiles['method']}), mean over folds: RMSE {tiles_mean['rmse']['mean']:.3f} +- "
                  f"{tiles_mean['rmse']['std']:.3f}, MAE {tiles_mean['mae']['mean']:.3f}, bias {tiles_mean['bias']['mean']:+.3f}. "
                  f"Pooled out-of-fold: RMSE {tiles['pooled']['rmse']:.3f}, MAE {tiles['pooled']['mae']:.3f}, bias {tiles['pooled']['bias']:+.3f}."]
    lines += ["", f"Fold models: {document['fold_models']}. Out-of-fold predictions: `{document['predictions_file']}`.", ""]
    timing = document.get("timing")
    if timing:
        parts = [f"features {timing['features_seconds']:.0f} s"]
        if document["settings"].get("mosaic", 0) > 0 and "mosaic_seconds" in timing:
            parts.append(f"mosaics {timing['mosaic_seconds']:.0f} s")
        if document["settings"].get("quadrants", 0) > 0 and "quadrant_seconds" in timing:
            parts.append(f"quadrants {timing['quadrant_seconds']:.0f} s")
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        lines += [f"Wall time {timing['total_seconds']:.0f} s, of which {listed}.", ""]
    return "\n".join(lines)


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:  # an empty bucket
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"
