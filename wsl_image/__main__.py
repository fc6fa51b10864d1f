import sys

from wsl_image.cli import main

sys.exit(main())
