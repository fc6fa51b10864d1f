"""Weight files: strict state-dict checks, SHA-256 of a file, torchvision weights by name or local file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Mapping

__all__ = ["sha256_file", "check_state_dict", "load_state_dict_file", "load_torchvision_weights", "name_keys"]


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def name_keys(keys: Iterable[str], limit: int = 4) -> str:
    """``'a', 'b', 'c' and 7 more`` for error messages."""
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_state_dict(model, state: Mapping, source: str, optional: Iterable[str] = ()) -> None:
    """Raise a one-line ValueError unless ``state`` has exactly ``model``'s keys and shapes.

    Args:
        model: the ``nn.Module`` the state dict is meant for.
        state: the loaded state dict.
        source: what to name in the message (the file path).
        optional: keys that may be missing (e.g. ``num_batches_tracked`` of old checkpoints).
    """
    import torch

    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"{source}: not a state dict (expected a mapping of parameter names to tensors, "
                         f"got {type(state).__name__})")
    expected = model.state_dict()
    optional = set(optional)
    missing = set(expected) - set(state) - optional
    unexpected = set(state) - set(expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {name_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {name_keys(unexpected)}")
        raise ValueError(f"{source}: does not match the {type(model).__name__} architecture: {'; '.join(parts)}")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{source}: {key!r} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"{source}: {key!r} has shape {tuple(value.shape)}, the model expects "
                             f"{tuple(expected[key].shape)}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"{source}: {key!r} holds NaN or infinite values")


def load_state_dict_file(model, path: str | Path, optional: Iterable[str] = ()) -> None:
    """Load a plain state-dict file into ``model`` strictly (``weights_only=True``; see :func:`check_state_dict`).

    A dict holding the state dict under ``"state_dict"`` or ``"model"`` is not unwrapped: the file must
    be the state dict itself, as torchvision's and the PyTorch I3D port's files are.
    """
    from wsl.utils.io import load_checkpoint

    state = load_checkpoint(path)
    check_state_dict(model, state, str(path), optional)
    model.load_state_dict(state, strict=False)


def load_torchvision_weights(model, weights: str | Path | None, weights_enum, what: str) -> str:
    """Put weights into a torchvision ``model``; returns where they came from.

    ``weights`` is a local file (torchvision state-dict format, strict), the name of a member of
    ``weights_enum`` (``"DEFAULT"``, ``"KINETICS400_V1"``, ...; torchvision's cache, downloaded when
    missing) or None (the model keeps its random initialisation).

    Returns:
        ``"file"``, ``"torchvision:<Enum>.<MEMBER>"`` or ``"random"``.
    """
    if weights is None:
        return "random"
    text = str(weights)
    members = [m for m in weights_enum.__members__]
    if text in members or (text.startswith(weights_enum.__name__ + ".") and text.split(".", 1)[1] in members):
        member = weights_enum[text.split(".", 1)[1] if "." in text else text]
        try:
            state = member.get_state_dict(progress=False, check_hash=True)
        except Exception as error:  # no network, no cache, corrupt download
            reason = " ".join(str(error).split())[:160] or type(error).__name__
            raise ValueError(f"could not get torchvision's {what} {weights_enum.__name__}.{member.name} ({reason}); "
                             "put the file in torchvision's cache (~/.cache/torch/hub/checkpoints) or pass a local "
                             "weights file") from None
        model.load_state_dict(state)
        return f"torchvision:{weights_enum.__name__}.{member.name}"
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} (a local file, or one of torchvision's names: "
                                f"{', '.join(members)})")
    load_state_dict_file(model, path)
    return "file"
