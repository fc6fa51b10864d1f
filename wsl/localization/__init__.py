"""Localization from activation maps: temporal segments (video) and boxes (image)."""

from wsl.localization.boxes import boxes_from_map, boxes_from_map_thresholds  # noqa: F401
