"""Localization from activation maps: temporal segments (video) and boxes (image)."""
