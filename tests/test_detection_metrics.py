from pathlib import Path

import numpy as np
import pytest

from wsl.metrics import average_precision, classification_map, detection_map, video_classification_map
from wsl.metrics.reference import (
    average_precision_reference,
    classification_map_reference,
    detection_map_reference,
    interpolated_ap_reference,
)


def gt_db(videos):
    """{video: (subset, [(start, end, label), ...])} -> ActivityNet-style ground truth."""
    return {
        "database": {
            video: {
                "subset": subset,
                "duration": 100.0,
                "annotations": [{"segment": [s, e], "label": label} for s, e, label in annotations],
            }
            for video, (subset, annotations) in videos.items()
        }
    }


def preds(entries):
    """[(video, start, end, label, score), ...] -> ActivityNet-style results (input order kept)."""
    results = {}
    for video, s, e, label, score in entries:
        results.setdefault(video, []).append({"label": label, "segment": [s, e], "score": score})
    return {"results": results}


HAND_GT = gt_db(
    {
        "a": ("test", [(0.0, 10.0, "X"), (20.0, 30.0, "X"), (40.0, 50.0, "Y")]),
        "c": ("validation", [(0.0, 10.0, "Z")]),
    }
)
HAND_PRED = preds(
    [
        ("a", 0.0, 10.0, "X", 0.9),  # tIoU 1 with X[0,10]: TP
        ("a", 1.0, 10.0, "X", 0.8),  # best is X[0,10] (0.9) but taken; X[20,30] has 0 < thr: FP
        ("a", 20.0, 25.0, "X", 0.7),  # tIoU 0.5 with X[20,30]: TP at 0.5, FP at 0.6
        ("b", 0.0, 10.0, "X", 0.6),  # video b has no ground truth in the subset: FP
        ("a", 0.0, 10.0, "Z", 0.95),  # Z is only annotated in another subset: not evaluated
    ]
)


class TestDetectionMap:
    def test_smoke(self):
        metrics = detection_map(HAND_GT, HAND_PRED, [0.5, 0.6], subset="test")
        # X at 0.5: TP FP TP FP, 2 positives. precision 1, 1/2, 2/3, 1/2; recall 1/2, 1/2, 1, 1.
        # interpolated AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.  X at 0.6: TP FP FP FP -> 1/2 * 1 = 1/2.
        # Y has no predictions: AP 0, still in the mean.
        np.testing.assert_allclose(metrics["per_class_ap"]["X"], [5 / 6, 1 / 2])
        np.testing.assert_allclose(metrics["per_class_ap"]["Y"], [0.0, 0.0])
        assert list(metrics["per_class_ap"]) == ["X", "Y"]
        np.testing.assert_allclose(metrics["mAP"], [5 / 12, 1 / 4])
        assert metrics["average_mAP"] == pytest.approx((5 / 12 + 1 / 4) / 2)
        assert metrics["tiou_thresholds"] == [0.5, 0.6]
        assert metrics["num_ground_truth"] == 3 and metrics["num_classes"] == 2
        assert metrics["num_predictions"] == 4
        assert "average_mAP_0.1_0.7" not in metrics

    def test_ambiguous(self):
        ambiguous = {"a": [(1.5, 2.0)], "b": [(10.0, 12.0)]}
        metrics = detection_map(HAND_GT, HAND_PRED, [0.5, 0.6], subset="test", ambiguous=ambiguous)
        # [1,10] overlaps the ambiguous [1.5,2] and is a FP: ignored. [0,10] also overlaps but is a TP:
        # kept. In b, [0,10] only touches [10,12] (zero intersection): still a FP.
        # X at 0.5: TP TP FP -> AP 1. X at 0.6: TP FP FP -> AP 1/2.
        np.testing.assert_allclose(metrics["per_class_ap"]["X"], [1.0, 0.5])
        reference = detection_map_reference(HAND_GT, HAND_PRED, [0.5, 0.6], subset="test", ambiguous=ambiguous)
        np.testing.assert_allclose(metrics["mAP"], reference["mAP"])

    def test_tie_rule(self):
        gt = gt_db({"a": ("test", [(0.0, 10.0, "X")])})
        miss, hit = ("a", 50.0, 60.0, "X", 0.5), ("a", 0.0, 10.0, "X", 0.5)
        # Equal scores keep the input order: FP then TP -> precision 1/2 at full recall.
        assert detection_map(gt, preds([miss, hit]), [0.5])["mAP"] == [0.5]
        assert detection_map(gt, preds([hit, miss]), [0.5])["mAP"] == [1.0]
        # Across videos the order of the results dict decides.
        other = ("b", 0.0, 10.0, "X", 0.5)
        assert detection_map(gt, preds([other, hit]), [0.5])["mAP"] == [0.5]
        assert detection_map(gt, preds([hit, other]), [0.5])["mAP"] == [1.0]

    def test_ground_truth_tie_rule(self):
        # Prediction 1 has tIoU 1/3 with both ground-truth segments; it takes the first one in file
        # order, so prediction 2 (tIoU 1/3 with the first only... and 0.5 with the second) still matches.
        gt = gt_db({"a": ("test", [(0.0, 4.0, "X"), (4.0, 8.0, "X")])})
        p = preds([("a", 2.0, 6.0, "X", 0.9), ("a", 4.0, 6.0, "X", 0.8)])
        metrics = detection_map(gt, p, [0.3])
        assert metrics["mAP"] == [1.0]
        reversed_gt = gt_db({"a": ("test", [(4.0, 8.0, "X"), (0.0, 4.0, "X")])})
        # Now prediction 1 takes [4,8]; prediction 2 overlaps [0,4] not at all: FP -> AP 1/2.
        assert detection_map(reversed_gt, p, [0.3])["mAP"] == [0.5]

    def test_perfect(self):
        gt = gt_db({f"v{i}": ("test", [(i, i + 5.0, "A"), (i + 10.0, i + 12.0, "B")]) for i in range(5)})
        p = preds(
            [(f"v{i}", i, i + 5.0, "A", 0.1 * i) for i in range(5)]
            + [(f"v{i}", i + 10.0, i + 12.0, "B", 0.3) for i in range(5)]
        )
        thresholds = np.linspace(0.1, 0.9, 9)
        metrics = detection_map(gt, p, thresholds)
        np.testing.assert_allclose(metrics["mAP"], np.ones(9))
        assert metrics["average_mAP_0.1_0.7"] == pytest.approx(1.0)
        assert metrics["tiou_thresholds"][2] == 0.3

    def test_empty_predictions(self):
        metrics = detection_map(HAND_GT, {"results": {}}, [0.5], subset="test")
        assert metrics["mAP"] == [0.0] and metrics["per_class_ap"] == {"X": [0.0], "Y": [0.0]}

    @pytest.mark.parametrize("seed", range(60))
    def test_against_reference(self, seed):
        rng = np.random.default_rng(seed)
        labels = ["L0", "L1", "L2", "L3"]
        videos = {}
        for v in range(int(rng.integers(1, 8))):
            annotations = []
            for _ in range(int(rng.integers(0, 6))):
                start = float(rng.integers(0, 30))
                annotations.append((start, start + float(rng.integers(1, 8)), labels[rng.integers(0, 3)]))
            videos[f"v{v}"] = (str(rng.choice(["test", "validation"])), annotations)
        videos["always"] = ("test", [(0.0, 5.0, "L0")])
        gt = gt_db(videos)
        names = list(videos) + ["unknown_video"]
        entries = []
        for _ in range(int(rng.integers(0, 60))):
            start = float(rng.integers(0, 30))
            entries.append(
                (
                    str(rng.choice(names)),
                    start,
                    start + float(rng.integers(0, 8)),
                    labels[rng.integers(0, 4)] if rng.random() < 0.9 else "L0",
                    float(np.round(rng.random(), 1)),  # ties on purpose
                )
            )
        rng.shuffle(entries)
        # Every label is known from a "train" video; L3 never appears in the evaluated subsets.
        videos_known = gt_db({"extra": ("train", [(0.0, 1.0, label) for label in labels])})
        gt["database"].update(videos_known["database"])
        thresholds = list(rng.choice([0.1, 0.3, 0.5, 0.7, 0.9, 1.0], size=int(rng.integers(1, 5)), replace=False))
        ambiguous = None
        if seed % 2:
            ambiguous = {}
            for _ in range(int(rng.integers(1, 6))):
                start = float(rng.integers(0, 30))
                ambiguous.setdefault(str(rng.choice(names)), []).append((start, start + float(rng.integers(0, 4))))
        subset = "test" if seed % 3 else None
        got = detection_map(gt, preds(entries), thresholds, subset=subset, ambiguous=ambiguous)
        expected = detection_map_reference(gt, preds(entries), thresholds, subset=subset, ambiguous=ambiguous)
        assert list(got["per_class_ap"]) == list(expected["per_class_ap"])
        for label in got["per_class_ap"]:
            np.testing.assert_allclose(got["per_class_ap"][label], expected["per_class_ap"][label], atol=1e-12)
        np.testing.assert_allclose(got["mAP"], expected["mAP"], atol=1e-12)

    def test_many_per_group(self):
        # Dense case: many predictions and ground truths in one (class, video) group.
        rng = np.random.default_rng(7)
        starts = np.sort(rng.uniform(0, 300, 40))
        gt = gt_db({"a": ("test", [(s, s + rng.uniform(1, 10), "A") for s in starts])})
        entries = []
        for _ in range(300):
            s = float(rng.uniform(0, 300))
            entries.append(("a", s, s + float(rng.uniform(0.5, 12)), "A", float(rng.random())))
        thresholds = [0.1, 0.25, 0.5, 0.75]
        got = detection_map(gt, preds(entries), thresholds)
        expected = detection_map_reference(gt, preds(entries), thresholds)
        np.testing.assert_allclose(got["mAP"], expected["mAP"], atol=1e-12)

    def test_invariance(self):
        rng = np.random.default_rng(1)
        gt = gt_db({f"v{i}": ("test", [(float(i), i + 3.0, "A"), (5.0, 9.0, "B")]) for i in range(6)})
        entries = [
            (
                f"v{rng.integers(6)}",
                float(s),
                float(s) + 4.0,
                str(rng.choice(["A", "B"])),
                float(rng.random()),
            )
            for s in rng.integers(0, 8, 40)
        ]
        base = detection_map(gt, preds(entries), [0.3, 0.5])
        # Distinct scores: neither the order of the input nor a monotone rescaling matters.
        shuffled = [entries[i] for i in rng.permutation(len(entries))]
        rescaled = [(v, s, e, label, 10 * score**3 - 2) for v, s, e, label, score in entries]
        for other in (shuffled, rescaled):
            np.testing.assert_allclose(detection_map(gt, preds(other), [0.3, 0.5])["mAP"], base["mAP"])

    def test_exception(self):
        with pytest.raises(ValueError, match="'Nope'.*video a|video a.*'Nope'"):
            detection_map(HAND_GT, preds([("a", 0.0, 1.0, "Nope", 0.5)]), [0.5])
        with pytest.raises(ValueError, match="subset 'train'"):
            detection_map(HAND_GT, HAND_PRED, [0.5], subset="train")
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            detection_map(HAND_GT, HAND_PRED, [0.0, 0.5])
        with pytest.raises(ValueError, match="non-empty"):
            detection_map(HAND_GT, HAND_PRED, [])
        with pytest.raises(ValueError, match="video a.*before its start"):
            detection_map(HAND_GT, preds([("a", 5.0, 1.0, "X", 0.5)]), [0.5])
        with pytest.raises(ValueError, match="video a.*finite"):
            detection_map(HAND_GT, preds([("a", 0.0, 1.0, "X", float("nan"))]), [0.5])
        with pytest.raises(ValueError, match="database"):
            detection_map({"videos": {}}, HAND_PRED, [0.5])
        with pytest.raises(ValueError, match="results"):
            detection_map(HAND_GT, {"predictions": {}}, [0.5])


class TestInterpolatedApReference:
    def test_smoke(self):
        assert interpolated_ap_reference([True, False, True, False], 2) == pytest.approx(5 / 6)
        assert interpolated_ap_reference([], 3) == 0.0
        # precision 0, 1/2, 2/3 at recall 0, 1/3, 2/3 -> envelope 2/3 -> (2/3) * (2/3)
        assert interpolated_ap_reference([False, True, True], 3) == pytest.approx(4 / 9)


class TestClassificationMap:
    def test_smoke(self):
        scores = np.array([[0.9], [0.8], [0.7], [0.6]])
        labels = np.array([[1], [0], [1], [0]])
        # positives at ranks 1 and 3: (1/1 + 2/3) / 2
        assert classification_map(scores, labels) == pytest.approx(5 / 6)

    def test_ties(self):
        # Tied scores form one operating point: 1 positive among 2 -> precision 1/2 whatever the order.
        assert classification_map(np.array([[0.5], [0.5]]), np.array([[1], [0]])) == pytest.approx(0.5)
        assert classification_map(np.array([[0.5], [0.5]]), np.array([[0], [1]])) == pytest.approx(0.5)

    def test_class_without_positive(self):
        scores = np.array([[0.9, 0.1], [0.2, 0.3]])
        labels = np.array([[1, 0], [0, 0]])
        ap = average_precision(scores, labels)
        assert ap[0] == 1.0 and np.isnan(ap[1])
        assert classification_map(scores, labels) == 1.0

    @pytest.mark.parametrize("seed", range(10))
    def test_against_reference(self, seed):
        rng = np.random.default_rng(seed)
        n, k = int(rng.integers(1, 30)), int(rng.integers(1, 6))
        scores = np.round(rng.random((n, k)), 1)
        labels = (rng.random((n, k)) < 0.3).astype(int)
        labels[0, 0] = 1
        expected = classification_map_reference(scores.tolist(), labels.tolist())
        assert classification_map(scores, labels) == pytest.approx(expected, abs=1e-12)
        for column in range(k):
            if labels[:, column].any():
                expected = average_precision_reference(scores[:, column].tolist(), labels[:, column].tolist())
                assert average_precision(scores, labels)[column] == pytest.approx(expected, abs=1e-12)

    def test_permutation_invariance(self):
        rng = np.random.default_rng(0)
        scores, labels = np.round(rng.random((40, 3)), 1), (rng.random((40, 3)) < 0.4).astype(int)
        permutation = rng.permutation(40)
        assert classification_map(scores[permutation], labels[permutation]) == pytest.approx(
            classification_map(scores, labels)
        )

    def test_video_level(self):
        gt = gt_db(
            {
                "a": ("test", [(0.0, 1.0, "X"), (2.0, 3.0, "X")]),
                "b": ("test", [(0.0, 1.0, "Y")]),
                "c": ("test", []),
                "d": ("validation", [(0.0, 1.0, "Z")]),
            }
        )
        video_scores = {"a": {"X": 0.9, "Y": 0.2}, "b": {"X": 0.95, "Y": 0.1, "Z": 0.3}, "d": {"X": 1.0}}
        # X over (a, b, c): scores 0.9, 0.95, 0 (missing) -> a ranked 2nd -> AP 1/2.
        # Y: scores 0.2, 0.1, 0 -> b ranked 2nd -> AP 1/2.
        assert video_classification_map(gt, video_scores, subset="test") == pytest.approx(0.5)
        with pytest.raises(ValueError, match="'W'"):
            video_classification_map(gt, {"a": {"W": 0.1}}, subset="test")

    def test_exception(self):
        with pytest.raises(ValueError, match="shape"):
            classification_map(np.zeros((3, 2)), np.zeros((3, 1)))
        with pytest.raises(ValueError, match="binary"):
            classification_map(np.zeros((2, 1)), np.array([[2], [0]]))
        with pytest.raises(ValueError, match="NaN"):
            classification_map(np.array([[np.nan]]), np.array([[1]]))
        with pytest.raises(ValueError, match="no class"):
            classification_map(np.zeros((2, 1)), np.zeros((2, 1)))


# The real THUMOS14 annotations, as shipped with the package.
THUMOS_DIR = Path(__file__).resolve().parents[1] / "wsl_video" / "resources" / "thumos14"
THUMOS_GT = THUMOS_DIR / "gt.json"
THUMOS_AMBIGUOUS = THUMOS_DIR / "Ambiguous_test.txt"


@pytest.mark.skipif(not (THUMOS_GT.is_file() and THUMOS_AMBIGUOUS.is_file()),
                    reason=f"THUMOS14 files not found: {THUMOS_GT} and {THUMOS_AMBIGUOUS}")
def test_thumos14_against_reference():
    from wsl_video.data.annotations import load_ground_truth, read_ambiguous

    gt = load_ground_truth(THUMOS_GT)
    ambiguous = read_ambiguous(THUMOS_AMBIGUOUS)
    rng = np.random.default_rng(0)
    labels = sorted({a["label"] for entry in gt["database"].values() for a in entry["annotations"]})
    entries = []
    for video, entry in gt["database"].items():
        if entry["subset"] != "test":
            continue
        for annotation in entry["annotations"][:8]:
            start, end = annotation["segment"]
            start, end = sorted((start + rng.normal(0, 1), end + rng.normal(0, 1)))
            label = annotation["label"] if rng.random() < 0.8 else labels[rng.integers(len(labels))]
            entries.append((video, start, end, label, float(np.round(rng.random(), 2))))
        for start, end in ambiguous.get(video, [])[:2]:
            entries.append((video, start, end + 1.0, labels[rng.integers(len(labels))], float(rng.random())))
    thresholds = [0.1, 0.5, 0.7]
    for amb in (None, ambiguous):
        got = detection_map(gt, preds(entries), thresholds, subset="test", ambiguous=amb)
        expected = detection_map_reference(gt, preds(entries), thresholds, subset="test", ambiguous=amb)
        assert got["num_classes"] == 20
        np.testing.assert_allclose(got["mAP"], expected["mAP"], atol=1e-12)


def test_unknown_labels_error_or_ignore():
    ground_truth = {"database": {"v1": {"subset": "test", "annotations": [{"segment": [0.0, 2.0], "label": "A"}]}}}
    predictions = {
        "results": {
            "v1": [
                {"label": "A", "segment": [0.0, 2.0], "score": 0.9},
                {"label": "Z", "segment": [0.0, 2.0], "score": 0.95},
            ]
        }
    }
    with pytest.raises(ValueError, match="'Z' unknown to the ground truth.*ignore-unknown-labels"):
        detection_map(ground_truth, predictions, [0.5])
    metrics = detection_map(ground_truth, predictions, [0.5], unknown_labels="ignore")
    assert metrics["mAP"] == [1.0]  # the unknown-label prediction is left out, not a false positive
    assert metrics["num_ignored_predictions"] == 1
    with pytest.raises(ValueError, match="unknown_labels"):
        detection_map(ground_truth, predictions, [0.5], unknown_labels="skip")


def test_video_classification_unknown_labels():
    ground_truth = {"database": {"v1": {"subset": "test", "annotations": [{"segment": [0.0, 2.0], "label": "A"}]},
                                 "v2": {"subset": "test", "annotations": [{"segment": [0.0, 2.0], "label": "B"}]}}}
    scores = {"v1": {"A": 0.9, "B": 0.1, "Z": 0.5}, "v2": {"A": 0.2, "B": 0.8, "Z": 0.5}}
    with pytest.raises(ValueError, match="'Z' unknown"):
        video_classification_map(ground_truth, scores)
    assert video_classification_map(ground_truth, scores, unknown_labels="ignore") == 1.0
