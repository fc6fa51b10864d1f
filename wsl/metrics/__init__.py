"""Evaluation metrics: temporal detection mAP, classification mAP, WSOL box accuracy, PxAP and PIoU."""

from .classification import average_precision, classification_map, video_classification_map  # noqa: F401
from .detection import detection_map  # noqa: F401
from .pixel import PixelPrecisionRecall, compose_mask, piou, pxap  # noqa: F401
from .wsol import BoxAccuracy, box_iou, localization_accuracy, max_box_acc, update_box_accuracies  # noqa: F401
