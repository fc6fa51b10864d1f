"""Where a study lives: the Optuna RDB storage, its lock file, and the check that processes agree on the setup.

Any number of processes, on one machine or several, may work on one study in one storage. On SQLite
a lock file next to the database (``study.db.lock``, :class:`wsl.utils.lock.FileLock`) makes "count the
trials, then start one" atomic; server databases have no lock file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping

from wsl.utils.lock import FileLock

__all__ = ["HEARTBEAT_S", "GRACE_S", "sqlite_path", "check_url", "open_storage", "study_lock",
           "load_or_create_study"]

HEARTBEAT_S = 30
GRACE_S = 120


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (absolute), None for other URLs; ``ValueError`` for in-memory."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise ValueError(f"cannot open the study storage {url}: an in-memory SQLite database cannot be shared; "
                         "name a file, e.g. sqlite:///study.db")
    return Path(os.path.abspath(os.path.expanduser(parsed.database)))


def check_url(url: str) -> Path | None:
    """:func:`sqlite_path`, with ``ValueError`` naming the URL when it is not a database URL."""
    try:
        return sqlite_path(url)
    except ValueError:
        raise
    except Exception as error:  # sqlalchemy.exc.ArgumentError and friends
        raise ValueError(f"cannot open the study storage {url!r}: not a database URL ({error})") from None


def open_storage(url: str):
    """An Optuna RDB storage with heartbeats; ``ValueError`` naming the URL when it cannot be opened."""
    import optuna

    kwargs: Dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 300}}  # wait for the other processes' writes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, **kwargs)
    except Exception as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot open the study storage {url}: {text}") from None


def study_lock(url: str) -> FileLock:
    """The lock of the study storage ``url``: ``DB.lock`` next to a SQLite file, none for other databases."""
    path = sqlite_path(url)
    return FileLock(None if path is None else path.with_name(path.name + ".lock"))


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{prefix}{key}"
            found = _first_difference(a[key], b[key], f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else prefix.rstrip(".") or "protocol"


def load_or_create_study(storage, name: str, protocol: Dict[str, Any], sampler, pruner, url: str):
    """The maximizing study ``name`` in ``storage``, created with ``protocol`` or checked against it.

    Raises:
        ValueError: the study minimizes, or was run with another protocol (the first difference named).
    """
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(f"study {name!r} in {url} minimizes its objective: it was not created by tune")
    recorded = study.user_attrs.get("protocol")
    if recorded is None:
        study.set_user_attr("protocol", protocol)
    else:
        difference = _first_difference(recorded, protocol)
        if difference is not None:
            def show(values):
                value = values
                for part in difference.split("."):
                    value = value.get(part, "(absent)") if isinstance(value, Mapping) else value
                return value

            raise ValueError(
                f"study {name!r} in {url} was run with another setup ({difference}: {show(recorded)!r} there, "
                f"{show(protocol)!r} here); give another --study-name or --storage to start a new study")
    return study
