"""Optional dependencies: which extra of ``pip install "wsl[...]"`` provides a module, and one clear error.

The core (aggregators, MAA, CAM, metrics) needs torch and numpy only; the tools need the extras
``[video]``, ``[image]`` and ``[tune]`` (``[all]`` is the three). :func:`require` imports a module or raises
:class:`MissingExtra`, whose message names the extra to install; the command runner prints it as one line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require", "extra_for", "needs_extra"]

#: Modules that belong to one extra whatever the tool.
_FIXED_EXTRA = {"av": "video", "timm": "image", "PIL": "image", "optuna": "tune"}
#: Modules that several extras provide: the running tool's extra is named.
_SHARED = {"cv2", "torchvision", "matplotlib", "yaml", "tqdm"}
#: The extra of each tool.
TOOL_EXTRA = {"wsl-video": "video", "wsl-image": "image"}


def needs_extra(module: str, extra: str) -> str:
    """``needs the [video] extra (missing module 'av'): pip install "wsl[video]"``."""
    return f"needs the [{extra}] extra (missing module '{module}'): pip install \"wsl[{extra}]\""


class MissingExtra(ModuleNotFoundError):
    """An optional dependency is not installed; ``str()`` says which extra provides it.

    Attributes:
        name: the missing top-level module.
        extra: the extra that installs it.
        what: the function or command that needs it.
    """

    def __init__(self, module: str, extra: str, what: str) -> None:
        super().__init__(f"{what}: {needs_extra(module, extra)}", name=module)
        self.extra = extra
        self.what = what


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtra` naming ``extra``.

    Args:
        module: dotted module name (``"av"``, ``"matplotlib.pyplot"``).
        extra: the extra that provides it (``"video"``, ``"image"``, ``"tune"``).
        what: what needs it, for the message (``"wsl-video extract"``, ``"wsl.localization.boxes_from_map"``).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = (error.name or module).split(".")[0]
        if missing != module.split(".")[0] and missing not in _FIXED_EXTRA and missing not in _SHARED:
            raise  # something else is broken inside the installed module
        raise MissingExtra(missing, extra, what) from None


def extra_for(module: str | None, tool: str | None = None) -> str | None:
    """The extra providing top-level ``module`` when run by ``tool`` (``wsl-video``...); None if not optional."""
    if not module:
        return None
    top = module.split(".")[0]
    if top in _FIXED_EXTRA:
        return _FIXED_EXTRA[top]
    if top in _SHARED:
        return TOOL_EXTRA.get(tool or "", "all")
    return None
