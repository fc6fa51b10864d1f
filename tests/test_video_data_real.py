"""The layouts read with the real THUMOS14 annotation files (W-TALC .npy files, ACM-Net gt.json and splits).

Only the annotation files are real; features are tiny stand-ins written next to them.
"""

import filecmp
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from wsl_video.data import THUMOS14_CLASSES, THUMOS14_EXCLUDED_TEST_VIDEOS, open_dataset
from wsl_video.data.sim import thumos14_resources

SHARED = Path(__file__).parents[2] / "shared" / "data" / "thumos14"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real THUMOS14 annotation files not found at {SHARED}")


def snippets(duration):
    return max(1, int(duration / 0.64))


def test_packaged_annotations_match_the_originals():
    packaged = thumos14_resources()
    for name in ("gt.json", "split_train.txt", "split_test.txt", "LICENSE.ACM-Net"):
        assert filecmp.cmp(packaged / name, SHARED / name, shallow=False), name
    assert filecmp.cmp(packaged / "Ambiguous_test.txt",
                       SHARED / "wtalc" / "Thumos14reduced-Annotations" / "Ambiguous_test.txt", shallow=False)
    assert filecmp.cmp(packaged / "LICENSE.W-TALC", SHARED / "wtalc" / "LICENSE.W-TALC", shallow=False)


@pytest.fixture(scope="module")
def acm_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("acm_real")
    for name in ("gt.json", "split_train.txt", "split_test.txt"):
        shutil.copy(SHARED / name, root / name)
    database = json.loads((SHARED / "gt.json").read_text())["database"]
    for subset in ("train", "test"):
        (root / subset).mkdir()
        for name in (SHARED / f"split_{subset}.txt").read_text().split():
            t = snippets(database[name]["duration"])
            np.save(root / subset / f"{name}.npy", np.full((t, 2), t, dtype=np.float32))
    return root


def test_acm_real_annotations(acm_root):
    train = open_dataset("thumos14", "train", data_root=acm_root)
    test = open_dataset("thumos14", "test", data_root=acm_root)
    assert len(train) == 200 and len(test) == 210  # split_test.txt leaves out the two excluded videos
    assert not set(THUMOS14_EXCLUDED_TEST_VIDEOS) & {v.name for v in test.videos}
    assert train.classes == list(THUMOS14_CLASSES) and test.feature_dims == {"rgb": 1, "flow": 1}
    assert sum(len(v.annotations) for v in train.videos) == 3007  # non-ambiguous validation instances
    labels = test.label_matrix()
    assert labels.sum(axis=0).min() >= 1 and labels.sum(axis=1).min() >= 1
    video = test.video("video_test_0000004")
    assert np.all(test.features("video_test_0000004")["rgb"] == video.num_snippets)


@pytest.fixture(scope="module")
def wtalc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("wtalc_real")
    shutil.copytree(SHARED / "wtalc" / "Thumos14reduced-Annotations", root / "Thumos14reduced-Annotations")
    folder = root / "Thumos14reduced-Annotations"
    durations = np.load(folder / "duration.npy").reshape(-1)
    features = np.empty(len(durations), dtype=object)
    for i, duration in enumerate(durations):
        features[i] = np.full((snippets(duration), 4), i, dtype=np.float32)
    np.save(root / "Thumos14reduced-I3D-JOINTFeatures.npy", features, allow_pickle=True)
    return root


def test_wtalc_real_annotations(wtalc_root, acm_root):
    train = open_dataset("thumos14", "train", data_root=wtalc_root)
    test = open_dataset("thumos14", "test", data_root=wtalc_root)
    assert len(train) == 200 and len(test) == 212
    assert len(open_dataset("thumos14", "test", data_root=wtalc_root, test_videos=210)) == 210
    assert train.classes == list(THUMOS14_CLASSES)
    assert sum(len(v.annotations) for v in test.videos) == 3358
    # 99 Ambiguous segments, 3 of them in video_test_0001292, which has no action and is not a test video
    assert sum(map(len, test.ambiguous.values())) == 96 and "video_test_0001292" not in test.ambiguous
    # the W-TALC and ACM-Net files describe the same instances
    acm = open_dataset("thumos14", "test", data_root=acm_root)
    for video in acm.videos:
        assert test.video(video.name).annotations == video.annotations
        assert test.video(video.name).labels == video.labels
    feats = test.features(0)
    assert feats["rgb"].shape == (test.videos[0].num_snippets, 2)


def test_restricted_reader_reads_the_real_wtalc_files():
    """The W-TALC annotation files read by the restricted unpickler equal what np.load gives."""
    from wsl_video.data.files import read_npy

    files = sorted((SHARED / "wtalc").rglob("*.npy"))
    assert files
    for path in files:
        restricted = read_npy(path, object_arrays=True)
        reference = np.load(path, allow_pickle=True, encoding="latin1")
        assert restricted.dtype == reference.dtype and restricted.shape == reference.shape, path.name
        assert repr(restricted.tolist()) == repr(reference.tolist()), path.name
