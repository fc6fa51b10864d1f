"""Localization from activation maps: temporal segments (video) and boxes (image)."""

from .temporal import detect_actions, nms_1d, segments_from_cas, soft_nms_1d, temporal_iou  # noqa: F401
