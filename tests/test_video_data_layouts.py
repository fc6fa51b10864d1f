"""Every on-disk layout read from small hand-made fixtures, and every bad-data case."""

import json
import warnings

import numpy as np
import pytest

from wsl_video.data import THUMOS14_CLASSES, open_dataset
from wsl_video.data.detect import detect_layout

RNG = np.random.default_rng(0)
DIM = 4  # per stream

# two training (validation) and two test videos: name -> (duration, [(start, end, label)])
VIDEOS = {
    "video_validation_0000051": ("validation", 9.6, [(1.0, 2.5, "Billiards"), (5.2, 6.0, "Billiards")]),
    "video_validation_0000201": ("validation", 6.4, [(0.5, 3.0, "CliffDiving"), (0.5, 3.0, "Diving")]),
    "video_test_0000004": ("test", 8.0, [(2.0, 4.0, "CricketShot")]),
    "video_test_0000270": ("test", 7.0, [(0.4, 1.5, "HammerThrow")]),
}
LENGTHS = {name: int(duration / 0.64) for name, (_, duration, _) in VIDEOS.items()}
RGB = {name: RNG.random((t, DIM)).astype(np.float32) for name, t in LENGTHS.items()}
FLOW = {name: RNG.random((t, DIM)).astype(np.float32) for name, t in LENGTHS.items()}
AMBIGUOUS = "video_test_0000004 5.0 6.5\n"


def gt_json(subsets, as_text=False):
    database = {}
    for name, (subset, duration, annotations) in VIDEOS.items():
        database[name] = {
            "subset": subsets[subset],
            "duration": duration,
            "annotations": [{"segment": [str(s), str(e)] if as_text else [s, e], "label": label}
                            for s, e, label in annotations],
        }
    return {"version": "test", "database": database}


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def split_of(subset):
    return "".join(f"{n}\n" for n, (s, _, _) in VIDEOS.items() if s == subset)


@pytest.fixture
def bas_root(tmp_path):
    root = tmp_path / "bas"
    for name, (subset, _, _) in VIDEOS.items():
        folder = "train" if subset == "validation" else "test"
        save(root / "features" / folder / "rgb" / f"{name}.npy", RGB[name])
        flow = FLOW[name] if name != "video_test_0000004" else np.vstack([FLOW[name], FLOW[name][:1]])
        save(root / "features" / folder / "flow" / f"{name}.npy", flow)  # one snippet longer: truncated
    gt = gt_json({"validation": "train", "test": "test"}, as_text=True)
    ambiguous = {"segment": ["5.0", "6.5"], "label": "Ambiguous"}  # Ambiguous instances inside gt.json
    gt["database"]["video_test_0000004"]["annotations"].append(ambiguous)
    (root / "gt.json").write_text(json.dumps(gt))
    return root


@pytest.fixture
def acm_root(tmp_path):
    root = tmp_path / "acm"
    for name, (subset, _, _) in VIDEOS.items():
        folder = "train" if subset == "validation" else "test"
        save(root / folder / f"{name}.npy", np.hstack([RGB[name], FLOW[name]]))
    (root / "gt.json").write_text(json.dumps(gt_json({"validation": "validation", "test": "test"})))
    (root / "split_train.txt").write_text(split_of("validation"))
    (root / "split_test.txt").write_text(split_of("test"))
    (root / "Ambiguous_test.txt").write_text(AMBIGUOUS)
    return root


def object_array(items):
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


@pytest.fixture
def wtalc_root(tmp_path):
    root = tmp_path / "wtalc"
    folder = root / "Thumos14reduced-Annotations"
    folder.mkdir(parents=True)
    names = list(VIDEOS)
    np.save(folder / "videoname.npy", np.array([n.encode() for n in names]))
    np.save(folder / "subset.npy", np.array([VIDEOS[n][0].encode() for n in names]))
    np.save(folder / "classlist.npy", np.array([c.encode() for c in THUMOS14_CLASSES]))
    np.save(folder / "duration.npy", np.array([[VIDEOS[n][1]] for n in names]))
    np.save(folder / "labels.npy", object_array([[a[2] for a in VIDEOS[n][2]] for n in names]), allow_pickle=True)
    np.save(folder / "segments.npy", object_array([[[a[0], a[1]] for a in VIDEOS[n][2]] for n in names]),
            allow_pickle=True)
    (folder / "Ambiguous_test.txt").write_text(AMBIGUOUS.replace(" ", "  "))
    joint = object_array([np.hstack([RGB[n], FLOW[n]]) for n in names])
    np.save(root / "Thumos14reduced-I3D-JOINTFeatures.npy", joint, allow_pickle=True)
    return root


ANET = {  # id -> (subset, duration, annotations)
    "abc123": ("training", 30.0, [(3.0, 12.5, "Long jump")]),
    "-xyz_9": ("training", 20.0, [(0.0, 20.0, "Zumba"), (4.0, 6.0, "Long jump")]),
    "qqq": ("validation", 40.0, [(10.0, 30.0, "Zumba")]),
    "test01": ("testing", 50.0, []),
}


@pytest.fixture(params=["joint", "two"])
def anet_root(tmp_path, request):
    root = tmp_path / "anet"
    database = {vid: {"subset": s, "duration": d, "url": "",
                      "annotations": [{"segment": [a, b], "label": c} for a, b, c in ann]}
                for vid, (s, d, ann) in ANET.items()}
    root.mkdir()
    (root / "activity_net.v1-3.min.json").write_text(json.dumps({"version": "VERSION 1.3", "database": database,
                                                                "taxonomy": []}))
    for i, vid in enumerate(ANET):
        name = f"v_{vid}.npy" if i % 2 == 0 else f"{vid}.npy"  # both file namings are accepted
        features = np.full((10, 2 * DIM), i, dtype=np.float32)
        if request.param == "joint":
            save(root / "features" / name, features)
        else:
            save(root / "features" / "rgb" / name, features[:, :DIM])
            save(root / "features" / "flow" / name, features[:, DIM:] + 1)
    return root


# ---------------------------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("layout", ["bas", "acm", "wtalc"])
def test_thumos14_layouts(layout, request):
    root = request.getfixturevalue(f"{layout}_root")
    assert detect_layout(root) == layout
    train = open_dataset("thumos14", "train", data_root=root)
    test = open_dataset("thumos14", "test", data_root=root, layout=layout)
    assert [v.name for v in train.videos] == ["video_validation_0000051", "video_validation_0000201"]
    assert [v.name for v in test.videos] == ["video_test_0000004", "video_test_0000270"]
    assert train.classes == list(THUMOS14_CLASSES) and train.streams == ("rgb", "flow")
    assert train.feature_dims == {"rgb": DIM, "flow": DIM}
    for ds in (train, test):
        assert len(ds) == len(ds.videos)
        labels = ds.label_matrix()
        assert labels.shape == (len(ds), 20) and labels.dtype == np.float32
        for i, video in enumerate(ds.videos):
            subset, duration, annotations = VIDEOS[video.name]
            assert video.annotations == sorted(annotations)
            assert video.labels == tuple(sorted({a[2] for a in annotations}))
            assert video.duration == pytest.approx(duration)
            assert video.num_snippets == LENGTHS[video.name] and video.seconds_per_snippet == pytest.approx(0.64)
            assert np.flatnonzero(labels[i]).tolist() == sorted(THUMOS14_CLASSES.index(c) for c in video.labels)
            feats = ds.features(video.name)
            assert np.array_equal(feats["rgb"], RGB[video.name]) and feats["rgb"].dtype == np.float32
            assert np.array_equal(feats["flow"], FLOW[video.name])  # the longer flow file is truncated
            assert np.array_equal(ds.features(i)["rgb"], feats["rgb"])
    assert test.ambiguous == {"video_test_0000004": [(5.0, 6.5)]}
    assert train.ambiguous == {}
    gt = test.ground_truth()
    assert set(gt["database"]) == {"video_test_0000004", "video_test_0000270"}
    entry = gt["database"]["video_test_0000004"]
    assert entry["annotations"] == [{"segment": [2.0, 4.0], "label": "CricketShot"}]
    assert entry["duration"] == pytest.approx(8.0) and entry["subset"] == "test"
    json.dumps(gt)  # serialisable as is


@pytest.mark.parametrize("layout", ["bas", "acm", "wtalc"])
def test_joint_streams(layout, request):
    root = request.getfixturevalue(f"{layout}_root")
    ds = open_dataset("thumos14", "train", data_root=root, streams="joint")
    assert ds.streams == ("joint",) and ds.feature_dims == {"joint": 2 * DIM}
    name = ds.videos[0].name
    assert np.array_equal(ds.features(0)["joint"], np.hstack([RGB[name], FLOW[name]]))


@pytest.mark.parametrize("layout", ["bas", "acm", "wtalc"])
def test_test_videos_210(layout, request):
    root = request.getfixturevalue(f"{layout}_root")  # acm: the split list decides, 210 still drops
    ds = open_dataset("thumos14", "test", data_root=root, test_videos=210)
    assert [v.name for v in ds.videos] == ["video_test_0000004"]


def test_activitynet(anet_root):
    train = open_dataset("activitynet", "train", data_root=anet_root)
    test = open_dataset("activitynet", "test", data_root=anet_root, streams="joint")
    assert train.classes == ["Long jump", "Zumba"] == test.classes
    assert [v.name for v in train.videos] == ["abc123", "-xyz_9"] and [v.name for v in test.videos] == ["qqq"]
    assert train.feature_dims == {"rgb": DIM, "flow": DIM} and test.feature_dims == {"joint": 2 * DIM}
    video = train.videos[1]
    assert video.num_snippets == 10 and video.seconds_per_snippet == pytest.approx(2.0)  # duration / T
    assert video.labels == ("Long jump", "Zumba")
    np.testing.assert_array_equal(train.label_matrix(), [[1, 0], [1, 1]])
    two_files = (anet_root / "features" / "rgb").is_dir()
    assert np.all(train.features(1)["rgb"] == 1) and np.all(train.features(1)["flow"] == 1 + two_files)
    assert test.videos[0].seconds_per_snippet == pytest.approx(4.0)
    gt = test.ground_truth()
    assert gt["version"] == "VERSION 1.3"
    assert gt["database"] == {"qqq": {"subset": "validation", "duration": 40.0,
                                      "annotations": [{"segment": [10.0, 30.0], "label": "Zumba"}]}}
    mask = test.videos[0].snippet_mask(test.classes)
    assert mask[:, 1].tolist() == [False] * 2 + [True] * 6 + [False] * 2  # [8, 32) s overlaps [10, 30)


# ---------------------------------------------------------------------------------------------- errors
def test_missing_feature_file(bas_root):
    missing = bas_root / "features" / "train" / "flow" / "video_validation_0000201.npy"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match="video_validation_0000201") as info:
        open_dataset("thumos14", "train", data_root=bas_root)
    assert str(missing) in str(info.value)
    with pytest.warns(UserWarning, match=r"skipped 1 video\(s\)") as record:
        ds = open_dataset("thumos14", "train", data_root=bas_root, skip_missing=True)
    assert len(record) == 1 and [v.name for v in ds.videos] == ["video_validation_0000051"]


def test_missing_all_is_empty(acm_root):
    for path in (acm_root / "test").glob("*.npy"):
        path.unlink()
    with warnings.catch_warnings(), pytest.raises(ValueError, match="empty"):
        warnings.simplefilter("ignore")
        open_dataset("thumos14", "test", data_root=acm_root, skip_missing=True)


def test_wtalc_missing_video(wtalc_root):
    path = wtalc_root / "Thumos14reduced-I3D-JOINTFeatures.npy"
    joint = np.load(path, allow_pickle=True)
    np.save(path, joint[:3], allow_pickle=True)  # the last video has no features
    with pytest.raises(FileNotFoundError, match="video_test_0000270"):
        open_dataset("thumos14", "test", data_root=wtalc_root)
    with pytest.warns(UserWarning, match=r"skipped 1 video"):
        ds = open_dataset("thumos14", "test", data_root=wtalc_root, skip_missing=True)
    assert len(ds) == 1


def test_stream_length_mismatch(bas_root):
    path = bas_root / "features" / "test" / "flow" / "video_test_0000270.npy"
    np.save(path, np.zeros((LENGTHS["video_test_0000270"] + 3, DIM), np.float32))
    with pytest.raises(ValueError, match=r"video_test_0000270.*more than 2 snippets"):
        open_dataset("thumos14", "test", data_root=bas_root)


def test_feature_dim_mismatch(acm_root):
    np.save(acm_root / "train" / "video_validation_0000201.npy", np.zeros((5, 6), np.float32))
    with pytest.raises(ValueError, match="video_validation_0000201.*6 dims"):
        open_dataset("thumos14", "train", data_root=acm_root)


def test_unknown_label(acm_root, wtalc_root):
    data = json.loads((acm_root / "gt.json").read_text())
    data["database"]["video_test_0000004"]["annotations"][0]["label"] = "Juggling"
    (acm_root / "gt.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="video_test_0000004: unknown label 'Juggling'"):
        open_dataset("thumos14", "test", data_root=acm_root)
    folder = wtalc_root / "Thumos14reduced-Annotations"
    labels = np.load(folder / "labels.npy", allow_pickle=True)
    labels[0] = ["Juggling", "Billiards"]
    np.save(folder / "labels.npy", labels, allow_pickle=True)
    with pytest.raises(ValueError, match="video_validation_0000051: unknown label 'Juggling'"):
        open_dataset("thumos14", "train", data_root=wtalc_root)


def test_bad_segment(bas_root):
    data = json.loads((bas_root / "gt.json").read_text())
    data["database"]["video_test_0000004"]["annotations"][0]["segment"] = ["2.0", "abc"]
    (bas_root / "gt.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="video_test_0000004: expected a number, got 'abc'"):
        open_dataset("thumos14", "test", data_root=bas_root)


def test_corrupt_json(acm_root, anet_root):
    (acm_root / "gt.json").write_text('{"database": {"video_test_0000004": ')
    with pytest.raises(ValueError, match="gt.json: corrupt JSON"):
        open_dataset("thumos14", "test", data_root=acm_root)
    (anet_root / "activity_net.v1-3.min.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="activity_net.v1-3.min.json: not an ActivityNet-style"):
        open_dataset("activitynet", "train", data_root=anet_root)


def test_corrupt_npy(bas_root, wtalc_root):
    path = bas_root / "features" / "train" / "rgb" / "video_validation_0000051.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="video_validation_0000051.npy: corrupt"):
        open_dataset("thumos14", "train", data_root=bas_root)
    path = wtalc_root / "Thumos14reduced-I3D-JOINTFeatures.npy"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="Thumos14reduced-I3D-JOINTFeatures.npy: corrupt"):
        open_dataset("thumos14", "train", data_root=wtalc_root)


def test_split_lists_unknown_video(acm_root):
    (acm_root / "split_test.txt").write_text("video_test_0000004\nvideo_test_9999999\n")
    with pytest.raises(ValueError, match="split_test.txt: video video_test_9999999 is not in the annotation"):
        open_dataset("thumos14", "test", data_root=acm_root)


def test_bad_arguments(tmp_path, acm_root):
    with pytest.raises(ValueError, match="unknown dataset 'thumos15'"):
        open_dataset("thumos15")
    with pytest.raises(ValueError, match="unknown subset 'val'"):
        open_dataset("thumos14-sim", "val")
    with pytest.raises(ValueError, match="unknown streams"):
        open_dataset("thumos14-sim", streams="rgb")
    with pytest.raises(ValueError, match="test_videos must be 212 or 210"):
        open_dataset("thumos14-sim", "test", test_videos=200)
    with pytest.raises(ValueError, match="needs data_root"):
        open_dataset("thumos14")
    with pytest.raises(FileNotFoundError, match="nowhere: data folder not found"):
        open_dataset("thumos14", data_root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no known feature layout"):
        open_dataset("thumos14", data_root=tmp_path)
    with pytest.raises(ValueError, match="unknown THUMOS14 layout 'xyz'"):
        open_dataset("thumos14", data_root=acm_root, layout="xyz")
    with pytest.raises(ValueError, match="sim options apply to thumos14-sim only"):
        open_dataset("thumos14", data_root=acm_root, sim={"feature_dim": 3})
    with pytest.raises(FileNotFoundError, match="videoname.npy: annotation file not found"):
        open_dataset("thumos14", data_root=acm_root, layout="wtalc")  # forced layout, files absent
    with pytest.raises(ValueError, match="expected activitynet: activity_net.v1-3.min.json"):
        open_dataset("activitynet", data_root=acm_root)


def test_unknown_video(acm_root):
    ds = open_dataset("thumos14", "test", data_root=acm_root)
    with pytest.raises(KeyError, match="video_test_0000001"):
        ds.features("video_test_0000001")


def test_preload(acm_root):
    ds = open_dataset("thumos14", "train", data_root=acm_root)
    before = {v.name: ds.features(v.name) for v in ds.videos}
    assert ds.preload() is ds
    for path in (acm_root / "train").glob("*.npy"):
        path.unlink()  # served from memory from now on
    for name, feats in before.items():
        after = ds.features(name)
        assert all(np.array_equal(after[s], feats[s]) for s in ("rgb", "flow"))
        after["rgb"][:] = -1  # callers get copies
        assert np.array_equal(ds.features(name)["rgb"], feats["rgb"])


def test_activitynet_without_duration(anet_root):
    path = anet_root / "activity_net.v1-3.min.json"
    data = json.loads(path.read_text())
    del data["database"]["qqq"]["duration"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="video qqq has no duration"):
        open_dataset("activitynet", "test", data_root=anet_root)


def test_wtalc_inconsistent_annotations(wtalc_root):
    folder = wtalc_root / "Thumos14reduced-Annotations"
    np.save(folder / "subset.npy", np.load(folder / "subset.npy")[:3])
    with pytest.raises(ValueError, match=r"subset.npy: 3 entries but videoname.npy has 4"):
        open_dataset("thumos14", "train", data_root=wtalc_root)


def test_odd_joint_features(acm_root):
    for path in (acm_root / "train").glob("*.npy"):
        np.save(path, np.zeros((5, 2 * DIM + 1), np.float32))
    with pytest.raises(ValueError, match="odd size 9"):
        open_dataset("thumos14", "train", data_root=acm_root)
    assert open_dataset("thumos14", "train", data_root=acm_root, streams="joint").feature_dims == {"joint": 9}


def test_non_numeric_features(bas_root):
    np.save(bas_root / "features" / "test" / "rgb" / "video_test_0000004.npy", np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="video_test_0000004.npy: expected numeric features"):
        open_dataset("thumos14", "test", data_root=bas_root)


def test_wtalc_doctored_pickle_runs_nothing(wtalc_root, tmp_path):
    """A W-TALC file whose pickle would call a function fails with one line naming it; nothing runs."""
    from hostile import MarkerPayload

    marker = tmp_path / "marker"
    for name in ("Thumos14reduced-I3D-JOINTFeatures.npy", "Thumos14reduced-Annotations/labels.npy"):
        path = wtalc_root / name
        original = path.read_bytes()
        np.save(path, object_array([np.zeros((3, 4), np.float32), MarkerPayload(marker)]), allow_pickle=True)
        with pytest.raises(ValueError) as error:
            open_dataset("thumos14", "train", data_root=wtalc_root)
        message = str(error.value)
        assert "\n" not in message and path.name in message and "io.open" in message, message
        assert not marker.exists()
        path.write_bytes(original)


def test_wtalc_restricted_reader_reads_numpy_pickles(wtalc_root, tmp_path):
    """NumPy scalars, byte strings, nested arrays and protocol-2 pickles (Python 2 style files) still load."""
    import pickle

    from wsl_video.data.files import read_npy

    values = object_array([[np.float64(1.5), np.float32(2.0)], [b"Diving", "Shotput"], np.arange(3), (4, 5)])
    for protocol in (2, 3, 4):
        path = tmp_path / f"p{protocol}.npy"
        with open(path, "wb") as handle:
            np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False,
                                                          "shape": values.shape})
            pickle.dump(values, handle, protocol=protocol)
        loaded = read_npy(path, object_arrays=True)
        assert loaded.dtype == object and loaded.shape == (4,)
        assert loaded[0] == [1.5, 2.0] and isinstance(loaded[0][0], np.float64)
        assert loaded[1] == [b"Diving", "Shotput"] and np.array_equal(loaded[2], np.arange(3))
        assert loaded[3] == (4, 5)
    plain = tmp_path / "plain.npy"
    np.save(plain, np.array([b"a", b"bc"]))
    assert read_npy(plain, object_arrays=True).tolist() == [b"a", b"bc"]
