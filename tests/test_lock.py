"""``wsl.utils.lock.FileLock``: exclusion between processes, and the no-op lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from wsl.utils.lock import LOCKING, FileLock

pytestmark = pytest.mark.skipif(not LOCKING, reason="no fcntl: locks are a no-op here")

HOLDER = textwrap.dedent("""
    import sys
    from wsl.utils.lock import FileLock

    lock = FileLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    sys.stdin.readline()  # hold the lock until the parent says so
    lock.release()
    print("released", flush=True)
""")

COUNTER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from wsl.utils.lock import FileLock

    lock, counter = FileLock(sys.argv[1]), Path(sys.argv[2])
    for _ in range(int(sys.argv[3])):
        with lock:  # read, then write back one more: updates are lost unless the lock excludes
            value = int(counter.read_text())
            counter.write_text(str(value + 1))
""")


def _python(code: str, *args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], text=True, **kwargs)


def test_another_process_waits_for_the_holder(tmp_path):
    path = tmp_path / "sub" / "folder.lock"  # the folder is created
    holder = _python(HOLDER, path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = FileLock(path)
        assert not lock.acquire(blocking=False) and not lock.held  # another process holds it
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        assert lock.acquire(blocking=False) and lock.held
        # now this process holds it: the other one cannot take it
        probe = subprocess.run([sys.executable, "-c", "import sys; from wsl.utils.lock import FileLock; "
                                "print(FileLock(sys.argv[1]).acquire(blocking=False))", str(path)],
                               capture_output=True, text=True, timeout=60)
        assert probe.stdout.strip() == "False", probe.stderr
        lock.release()
        lock.release()  # a second release does nothing
        assert not lock.held
    finally:
        holder.kill()
        holder.wait()


def test_processes_never_overlap(tmp_path):
    """Three processes increment one counter 40 times each under the lock: no increment is lost."""
    counter = tmp_path / "counter.txt"
    counter.write_text("0")
    workers = [_python(COUNTER, tmp_path / "counter.lock", counter, 40) for _ in range(3)]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0, 0]
    assert counter.read_text() == "120"


def test_context_manager_and_no_lock(tmp_path):
    path = tmp_path / "x.lock"
    lock = FileLock(path)
    with lock:
        assert lock.held and path.is_file()
        assert lock.acquire()  # already held: nothing happens
    assert not lock.held
    with FileLock(None) as none:  # no lock file: nothing is locked or written
        assert not none.held
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.lock"]
