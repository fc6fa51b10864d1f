"""Optical flow: sign and scale on a known translation, I3D scaling, worker processes, RAFT."""

import numpy as np
import pytest
import torch
from video_synth import moving_pattern, write_video

from wsl_video.features.decoding import VideoDecoder
from wsl_video.features.flow import RaftFlow, TVL1Flow, tvl1_flow
from wsl_video.features.transforms import flow_to_unit_range


def _interior_mean(flow, margin=6):
    return flow[:, margin:-margin, margin:-margin].mean(axis=(0, 1, 2))


@pytest.mark.parametrize(("dx", "dy"), [(2, 0), (0, -1), (-1, 1)])
def test_tvl1_sign_and_scale_on_a_translation_through_pyav(tmp_path, dx, dy):
    """A texture moving right by dx and down by dy pixels per frame, encoded losslessly with PyAV and decoded
    back, gives flow (x, y) = (dx, dy) pixels, (dx, dy) / 20 after the I3D scaling."""
    path = write_video(tmp_path / "moving.mp4", moving_pattern(6, 40, 48, dx=dx, dy=dy), 25)
    frames = np.concatenate(list(VideoDecoder(path, 25, "resize40x48_crop32").chunks()))
    flow = tvl1_flow(frames)
    assert flow.shape == (5, 40, 48, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(_interior_mean(flow), [dx, dy], atol=0.1)
    np.testing.assert_allclose(_interior_mean(flow_to_unit_range(flow)), [dx / 20, dy / 20], atol=0.005)


def test_flow_to_unit_range_clips_and_scales():
    flow = np.array([-30.0, -20.0, -10.0, 0.0, 5.0, 25.0], np.float32)
    np.testing.assert_array_equal(flow_to_unit_range(flow), [-1.0, -1.0, -0.5, 0.0, 0.25, 1.0])
    np.testing.assert_array_equal(flow_to_unit_range(flow, bound=10.0), [-1.0, -1.0, -1.0, 0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="bound"):
        flow_to_unit_range(flow, 0)


def test_tvl1_workers_give_the_same_flow():
    frames = moving_pattern(11, 24, 32, dx=1, dy=1)
    with TVL1Flow(workers=2, pairs_per_task=3) as pool:
        parallel = pool(frames)
    with TVL1Flow(workers=0) as local:
        serial = local.submit(frames).result()
    assert np.array_equal(parallel, serial) and parallel.shape == (10, 24, 32, 2)


def test_tvl1_exception():
    with pytest.raises(ValueError, match="at least 2 frames"):
        tvl1_flow(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        tvl1_flow(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="workers"):
        TVL1Flow(workers=-1)
    with pytest.raises(ValueError, match="unknown TV-L1"):
        TVL1Flow(params={"tau": 0.25, "speed": 1})


def test_raft_shapes_and_weights_file(tmp_path):
    """Random weights (no download here): shapes for an odd frame size, a torchvision state-dict file loads
    strictly and gives the same flow."""
    frames = moving_pattern(3, 36, 44, dx=2)
    random = RaftFlow("raft_small", None, iterations=2)
    assert random.source == "random"
    flow = random(frames)
    assert flow.shape == (2, 36, 44, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()

    path = tmp_path / "raft_small.pth"
    torch.save(random.net.state_dict(), path)
    from_file = RaftFlow("raft_small", path, iterations=2)
    assert from_file.source == "file"
    assert np.array_equal(from_file(frames), flow)

    state = random.net.state_dict()
    state.pop(next(iter(state)))
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="missing keys"):
        RaftFlow("raft_small", tmp_path / "partial.pth")
    with pytest.raises(FileNotFoundError, match="C_T_SKHT_V2"):
        RaftFlow("raft_large", tmp_path / "nowhere.pth")
    with pytest.raises(ValueError, match="unknown RAFT model"):
        RaftFlow("raft_medium", None)
