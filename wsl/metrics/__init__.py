"""Evaluation metrics: temporal detection mAP, classification mAP, WSOL box accuracy."""

from wsl.metrics.wsol import BoxAccuracy, box_iou, localization_accuracy, max_box_acc  # noqa: F401
