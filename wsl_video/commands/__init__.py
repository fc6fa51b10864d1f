"""Sub-commands of ``wsl-video``; one module each."""
