"""Localization from activation maps: temporal segments (video) and boxes (image)."""

from .boxes import boxes_from_map, boxes_from_map_thresholds  # noqa: F401
from .temporal import detect_actions, nms_1d, segments_from_cas, soft_nms_1d, temporal_iou  # noqa: F401
