"""On-disk feature layouts: W-TALC, BaS-Net, ACM-Net (THUMOS14), W-TALC (ActivityNet1.2), ActivityNet1.3 and
``custom`` (own data)."""

from wsl_video.data.layouts.acm import open_acm
from wsl_video.data.layouts.activitynet import open_activitynet
from wsl_video.data.layouts.bas import open_bas
from wsl_video.data.layouts.custom import open_custom
from wsl_video.data.layouts.wtalc import open_activitynet12, open_wtalc

__all__ = ["open_acm", "open_activitynet", "open_activitynet12", "open_bas", "open_custom", "open_wtalc"]
