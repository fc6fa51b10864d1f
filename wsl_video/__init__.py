"""Temporal action localization with MAAN on pre-extracted I3D features."""
