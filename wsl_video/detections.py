"""Reading and writing detection results.

Detections use the ActivityNet result format::

    {"version": "VERSION 1.3",
     "results": {video: [{"label": str, "segment": [start, end], "score": float}, ...]},
     "external_data": {"used": bool, "details": str},
     "video_scores": {video: {label: probability}}}     # optional, for classification mAP

``video_scores`` is an extension that other toolkits ignore. Ground truth and THUMOS14 ambiguous
segments are read by :mod:`wsl_video.data.annotations` (``load_ground_truth``, ``read_ambiguous``).
Only json, numpy-free Python and :mod:`wsl.utils.io` are used so that the evaluation command starts fast.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

from wsl.metrics._parsing import parse_segment
from wsl.utils.io import atomic_write_json
from wsl.utils.numbers import finite_float

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["write_detections", "load_detections", "RESULT_VERSION"]

RESULT_VERSION = "VERSION 1.3"


def _check_detection(entry: Any, where: str) -> dict:
    """Validate one detection with precise messages (slow path)."""
    if not isinstance(entry, Mapping) or not {"label", "segment", "score"} <= set(entry):
        raise ValueError(f"{where}: each detection needs 'label', 'segment' and 'score'")
    return {
        "label": str(entry["label"]),
        "segment": list(parse_segment(entry["segment"], where)),
        "score": finite_float(entry["score"], f"{where}: score"),
    }


def _clean_results(results: Any, where: str) -> dict[str, list[dict]]:
    if not isinstance(results, Mapping):
        raise ValueError(f"{where}: 'results' must be an object mapping video ids to lists of detections")
    clean = {}
    infinity = math.inf
    for video, entries in results.items():
        at = f"{where}: video {video}"
        if not isinstance(entries, (list, tuple)):
            raise ValueError(f"{at}: detections must be a list")
        rows = []
        for entry in entries:
            # Fast path for well-formed entries; the slow path explains what is wrong.
            try:
                label, segment, score = entry["label"], entry["segment"], entry["score"]
                if len(segment) != 2 or isinstance(segment, (str, bytes, dict)) or score.__class__ is bool:
                    raise ValueError
                score = float(score)
                start, end = float(segment[0]), float(segment[1])
            except (TypeError, KeyError, ValueError, IndexError):
                rows.append(_check_detection(entry, at))
                continue
            if not (-infinity < start <= end < infinity and -infinity < score < infinity):
                rows.append(_check_detection(entry, at))
                continue
            rows.append(
                {"label": label if label.__class__ is str else str(label), "segment": [start, end], "score": score}
            )
        clean[str(video)] = rows
    return clean


def _clean_video_scores(video_scores: Any, where: str) -> dict[str, dict[str, float]]:
    if not isinstance(video_scores, Mapping):
        raise ValueError(f"{where}: 'video_scores' must be an object mapping video ids to {{label: score}}")
    clean = {}
    for video, scores in video_scores.items():
        if not isinstance(scores, Mapping):
            raise ValueError(f"{where}: video {video}: video scores must map labels to numbers")
        clean[str(video)] = {
            str(label): finite_float(score, f"{where}: video {video}: score of {label}")
            for label, score in scores.items()
        }
    return clean


def write_detections(
    path: PathLike,
    results: Mapping[str, list[Mapping]],
    *,
    video_scores: Mapping[str, Mapping[str, float]] | None = None,
    external_data: Mapping | None = None,
) -> None:
    """Write detections atomically in the ActivityNet result format.

    Args:
        path: output JSON file.
        results: ``{video: [{"label", "segment": [start, end], "score"}]}``; numpy numbers are fine.
        video_scores: optional ``{video: {label: probability}}`` stored for classification mAP.
        external_data: ActivityNet's ``{"used": bool, "details": str}``; ``used=False`` when None.
    """
    where = f"detections for {path}"
    payload: dict[str, Any] = {
        "version": RESULT_VERSION,
        "results": _clean_results(results, where),
        "external_data": dict(external_data) if external_data is not None else {"used": False, "details": ""},
    }
    if video_scores is not None:
        payload["video_scores"] = _clean_video_scores(video_scores, where)
    atomic_write_json(path, payload, indent=None)


def _read_json(path: PathLike, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None


def load_detections(
    path: PathLike, *, validate: bool = True
) -> tuple[dict[str, list[dict]], dict[str, dict[str, float]] | None]:
    """Read an ActivityNet-format detection file.

    Args:
        path: JSON file with ``results`` (and optionally ``video_scores``).
        validate: check and normalise every detection (float numbers, string labels). With False
            only the top-level structure is checked and ``results`` is returned as read, for callers
            that validate it themselves (:func:`wsl.metrics.detection_map` does).

    Returns:
        ``(results, video_scores)``: results ``{video: [{"label", "segment": [start, end],
        "score"}]}`` and the optional ``video_scores`` (None when absent).
    """
    data = _read_json(path, "detections")
    if not isinstance(data, dict) or "results" not in data:
        raise ValueError(f"{path}: not a detection file (missing 'results')")
    results = data["results"]
    if validate:
        results = _clean_results(results, str(path))
    elif not isinstance(results, dict) or not all(isinstance(entries, list) for entries in results.values()):
        raise ValueError(f"{path}: 'results' must be an object mapping video ids to lists of detections")
    video_scores = data.get("video_scores")
    if video_scores is not None:
        video_scores = _clean_video_scores(video_scores, str(path))
    return results, video_scores
