"""Small shared utilities: atomic file writes, safe checkpoint loading, JSON-ready values, number parsing,
run folders and the command-line runner."""

from .errors import TrainingDiverged
from .io import atomic_save, atomic_write_json, atomic_write_text, atomic_writer, jsonable, load_checkpoint, read_yaml
from .numbers import finite_float
from .runs import RunFolder, RunLog, absolute_path, check_run_dir, recorded_path, remove_run_files

__all__ = ["atomic_save", "atomic_write_json", "atomic_write_text", "atomic_writer", "load_checkpoint", "read_yaml",
           "jsonable", "finite_float", "absolute_path", "check_run_dir", "recorded_path", "remove_run_files",
           "RunFolder", "RunLog",
           "TrainingDiverged"]
