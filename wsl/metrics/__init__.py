"""Evaluation metrics: temporal detection mAP, classification mAP, WSOL box accuracy."""
