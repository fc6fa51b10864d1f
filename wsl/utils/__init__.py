"""Small shared utilities: atomic file writes and the command-line runner."""

from .io import atomic_save, atomic_write_json, atomic_write_text, atomic_writer, load_checkpoint, read_yaml

__all__ = ["atomic_save", "atomic_write_json", "atomic_write_text", "atomic_writer", "load_checkpoint", "read_yaml"]
