"""Weakly-supervised object localization: CAM with marginalized average aggregation."""
