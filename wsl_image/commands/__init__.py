"""Sub-commands of ``wsl-image``; one module each."""
