"""torchvision video backbones as RGB feature extractors: cut point, weights files, input rules."""

import pytest
import torch
import torchvision.models.video as video

from wsl_video.features.backbones import VIDEO_BACKBONES, load_video_backbone
from wsl_video.features.settings import BACKBONES


def test_backbone_names_agree():
    assert BACKBONES == ("i3d", *VIDEO_BACKBONES)


@pytest.mark.parametrize(("name", "shape"), [("r3d_18", (2, 3, 4, 16, 16)), ("r2plus1d_18", (1, 3, 4, 16, 16)),
                                             ("s3d", (1, 3, 14, 32, 32)), ("swin3d_t", (1, 3, 4, 32, 32))])
def test_smoke_shapes(name, shape):
    model = load_video_backbone(name)
    assert model.source == "random" and not model.training
    with torch.inference_mode():
        out = model(model.normalize(torch.randint(0, 256, shape, dtype=torch.uint8)))
    assert out.shape == (shape[0], VIDEO_BACKBONES[name].feature_dim) and torch.isfinite(out).all()


def test_weights_file_and_cut_point(tmp_path):
    """A torchvision state-dict file (classifier included) loads strictly; the features are what the
    torchvision model computes just before its classifier."""
    torch.manual_seed(5)
    reference = video.r3d_18().eval()
    path = tmp_path / "r3d_18.pth"
    torch.save(reference.state_dict(), path)
    model = load_video_backbone("r3d_18", path)
    assert model.source == "file"
    clips = torch.rand(2, 3, 4, 16, 16)
    state = torch.load(path, weights_only=True)
    with torch.inference_mode():
        logits = reference(clips)
        features = model(clips)
        # the features are the classifier's input: the classifier applied to them gives torchvision's logits
        torch.testing.assert_close(features @ state["fc.weight"].T + state["fc.bias"], logits, rtol=1e-4, atol=1e-5)
        reference.fc = torch.nn.Identity()
        torch.testing.assert_close(features, reference(clips))

    partial = dict(reference.state_dict())
    partial.pop("layer1.0.conv1.0.weight")
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="missing keys 'fc.bias', 'fc.weight', 'layer1.0.conv1.0.weight'"):
        load_video_backbone("r3d_18", tmp_path / "partial.pth")


def test_normalization():
    model = load_video_backbone("r3d_18")
    white = model.normalize(torch.full((1, 3, 1, 1, 1), 255, dtype=torch.uint8)).flatten()
    expected = (1 - torch.tensor(VIDEO_BACKBONES["r3d_18"].mean)) / torch.tensor(VIDEO_BACKBONES["r3d_18"].std)
    torch.testing.assert_close(white, expected)


def test_exception():
    with pytest.raises(ValueError, match="unknown video backbone"):
        load_video_backbone("resnet50")
    with pytest.raises(FileNotFoundError, match="KINETICS400_V1"):
        load_video_backbone("r3d_18", "no_such_file.pth")
    mvit = load_video_backbone("mvit_v2_s")
    assert mvit.feature_dim == 768
    with pytest.raises(ValueError, match="exactly 16 x 224 x 224"):
        mvit(torch.zeros(1, 3, 8, 224, 224))
    with pytest.raises(ValueError, match="at least 14 frames"):
        load_video_backbone("s3d")(torch.zeros(1, 3, 8, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        load_video_backbone("r3d_18")(torch.zeros(1, 2, 4, 16, 16))
