"""ActivityNet1.2 in the W-TALC layout: generated files in the exact on-disk format, opened and trained on."""

import json

import numpy as np
import pytest

from wsl_video.cli import main
from wsl_video.data import open_dataset

CLASSES = ["Archery", "Ballet", "Canoeing"]
DIM = 6  # per stream; the joint vector is RGB then flow


def _object_array(items):
    array = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        array[index] = item
    return array


def _write(root, *, drop_duration=False):
    """12 videos: 8 training, 4 validation; names, subsets and labels as byte strings, as W-TALC stores them."""
    rng = np.random.default_rng(0)
    folder = root / "ActivityNet1.2-Annotations"
    folder.mkdir(parents=True)
    names, subsets, labels, segments, durations, features = [], [], [], [], [], []
    for index in range(12):
        label = CLASSES[index % 3]
        length = 40 + 7 * index
        duration = 60.0 + 13.0 * index
        start, end = 0.2 * duration, 0.55 * duration
        joint = rng.normal(0, 0.1, (length, 2 * DIM)).astype(np.float32)
        first, last = int(start / duration * length), int(end / duration * length)
        joint[first:last, index % 3] += 3.0  # the class shows in its segment
        joint[first:last, DIM + index % 3] += 3.0
        names.append(f"v_{index:011d}".encode())
        subsets.append(b"training" if index < 8 else b"validation")
        labels.append([label.encode()])
        segments.append([[start, end]])
        durations.append([duration])
        features.append(joint)
    if drop_duration:
        durations[9] = [float("nan")]
    np.save(folder / "videoname.npy", np.array(names))
    np.save(folder / "subset.npy", np.array(subsets))
    np.save(folder / "classlist.npy", np.array([c.encode() for c in CLASSES]))
    np.save(folder / "labels.npy", _object_array(labels), allow_pickle=True)
    np.save(folder / "segments.npy", _object_array(segments), allow_pickle=True)
    np.save(folder / "duration.npy", np.array(durations))
    np.save(root / "ActivityNet1.2-I3D-JOINTFeatures.npy", _object_array(features), allow_pickle=True)
    return durations, features


def test_smoke(tmp_path):
    durations, features = _write(tmp_path)
    train = open_dataset("activitynet1.2", "train", data_root=tmp_path)
    test = open_dataset("activitynet1.2", "test", data_root=tmp_path)
    assert (len(train), len(test)) == (8, 4) and train.classes == CLASSES
    assert train.feature_dims == {"rgb": DIM, "flow": DIM}
    video = test.videos[1]  # video 9
    assert video.num_snippets == len(features[9])
    assert video.seconds_per_snippet == pytest.approx(durations[9][0] / len(features[9]))
    assert video.labels == ("Archery",) and test.ambiguous == {}
    np.testing.assert_array_equal(test.features(1)["flow"], features[9][:, DIM:])
    joint = open_dataset("activitynet1.2", "train", data_root=tmp_path, streams="joint")
    assert joint.feature_dims == {"joint": 2 * DIM}


def test_train_and_evaluate(tmp_path, capsys):
    _write(tmp_path / "data")
    out = tmp_path / "run"
    status = main(["train", "--dataset", "activitynet1.2", "--data-root", str(tmp_path / "data"), "--out", str(out),
                   "--iterations", "30", "--batch-size", "4", "--num-segments", "8", "--device", "cpu", "--quiet"])
    assert status == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "activitynet1.2" and metrics["num_videos"] == 4
    assert metrics["tiou_thresholds"] == pytest.approx([0.5 + 0.05 * i for i in range(10)])
    assert 0.0 <= metrics["average_mAP"] <= 1.0
    detections = json.loads((out / "detections.json").read_text())["results"]
    assert set(detections) == {f"v_{index:011d}" for index in range(8, 12)}


def test_exception(tmp_path, capsys):
    _write(tmp_path, drop_duration=True)
    with pytest.raises(ValueError, match=r"duration.npy: video v_00000000009 has no positive duration"):
        open_dataset("activitynet1.2", "test", data_root=tmp_path)
    with pytest.raises(ValueError, match="ActivityNet1.2 has one layout, 'wtalc'; got layout='bas'"):
        open_dataset("activitynet1.2", "train", data_root=tmp_path, layout="bas")
    empty = tmp_path / "empty"
    empty.mkdir()
    status = main(["train", "--dataset", "activitynet1.2", "--data-root", str(empty), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "ActivityNet1.2-I3D-JOINTFeatures.npy and ActivityNet1.2-Annotations/" in err
