"""Small shared utilities: atomic file writes, safe checkpoint loading, run folders and the command-line runner."""

from .errors import TrainingDiverged
from .io import atomic_save, atomic_write_json, atomic_write_text, atomic_writer, load_checkpoint, read_yaml
from .runs import RunFolder, RunLog, absolute_path, check_run_dir, recorded_path, remove_run_files

__all__ = ["atomic_save", "atomic_write_json", "atomic_write_text", "atomic_writer", "load_checkpoint", "read_yaml",
           "absolute_path", "check_run_dir", "recorded_path", "remove_run_files", "RunFolder", "RunLog",
           "TrainingDiverged"]
