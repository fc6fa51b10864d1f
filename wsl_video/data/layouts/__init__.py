"""On-disk feature layouts: W-TALC, BaS-Net, ACM-Net (THUMOS14) and ActivityNet1.3."""

from wsl_video.data.layouts.acm import open_acm
from wsl_video.data.layouts.activitynet import open_activitynet
from wsl_video.data.layouts.bas import open_bas
from wsl_video.data.layouts.wtalc import open_wtalc

__all__ = ["open_acm", "open_activitynet", "open_bas", "open_wtalc"]
