import sys

from wsl_video.cli import main

sys.exit(main())
