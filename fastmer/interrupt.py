"""Stopping a command at once on Ctrl-C (SIGINT) or ``kill`` (SIGTERM), leaving no process behind.

Every ``fastmer`` command runs under :func:`handle_signals` (the CLI's entry point does it):

* SIGINT and SIGTERM (what schedulers, ``timeout``, systemd and Ray send) raise
  :class:`Interrupted` (a :class:`KeyboardInterrupt`) in the main thread, so ``finally``
  blocks and context managers run: temporary files of atomic writes are removed, pools shut
  down. Should that exception be lost (raised inside a destructor, Python only prints it), a
  watchdog stops the command :data:`WATCHDOG_SECONDS` later, and a body that finishes
  anyway still reports the interruption.
* Worker processes are stopped, not waited for (:func:`stop_children`: SIGTERM, then SIGKILL
  after a grace period), and a local Ray instance is shut down.
* One line says what was kept (:func:`keep_note`: each command says it as it goes), and the
  exit status is the shell's convention: 130 for SIGINT, 143 for SIGTERM.

Worker processes (:func:`process_pool`) ignore SIGINT (Ctrl-C reaches the whole foreground
process group: the parent decides) and ask the kernel to kill them when their parent dies
(Linux ``PR_SET_PDEATHSIG``), so not even a SIGKILL of the command leaves them running.

This module imports the standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

__all__ = ["EXIT_STATUS", "Interrupted", "handle_signals", "keep_note", "new_process_pool", "process_pool",
           "signals_reclaimed", "stop_children", "stop_descendants", "stop_everything", "stop_pool", "worker_setup"]

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
"""128 + the signal's number, as a shell reports a command a signal ended."""

GRACE_SECONDS = 2.0
"""How long a worker has to exit after SIGTERM before it is killed."""

WATCHDOG_SECONDS = 15.0
"""An exception raised by a signal handler is lost when it lands in a destructor or a
callback (Python prints "Exception ignored" and goes on); if the command has not reached
its cleanup this long after the signal, the watchdog stops the workers and exits."""

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when a termination signal arrives (a KeyboardInterrupt, so
    ``except Exception`` handlers do not swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_note: Callable[[], str] | str | None = None
_stopped = 0  # worker processes stopped since the command started (by a pool's cleanup or by stop_everything)


def keep_note(note: Callable[[], str] | str | None) -> None:
    """What an interruption now would keep, said in the one-line message (a string, or a
    callable asked at the moment of the interruption; None: the generic message)."""
    global _note
    _note = note


def _kept() -> str:
    note = _note() if callable(_note) else _note
    return note or "finished outputs are kept, nothing half-written is left (files are written atomically)"


_received: int | None = None
_handling = False  # handle_signals is active
_cleanup_started = threading.Event()


def _watchdog(signum: int) -> None:
    if not _cleanup_started.wait(WATCHDOG_SECONDS):
        sys.stderr.write(f"interrupted ({signal.Signals(signum).name}): not stopped after {WATCHDOG_SECONDS:g} s, "
                         f"exiting now; {_kept()}\n")
        sys.stderr.flush()
        stop_children()
        os._exit(EXIT_STATUS[signal.Signals(signum)])


def _raise(signum: int, frame: Any) -> None:
    global _received
    if _received is None:
        _received = signum
        threading.Thread(target=_watchdog, args=(signum,), name="fastmer-interrupt-watchdog", daemon=True).start()
    raise Interrupted(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Run the body so that SIGINT and SIGTERM raise :class:`Interrupted` (a KeyboardInterrupt).

    Signal handlers can only be installed from the main thread; elsewhere (a test runner's
    thread) the body runs as it is.
    """
    global _stopped, _received
    _stopped, _received = 0, None
    _cleanup_started.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _handling
    previous = {signum: signal.signal(signum, _raise) for signum in EXIT_STATUS}
    _handling = True
    try:
        yield
        if _received is not None:  # its exception was swallowed (see WATCHDOG_SECONDS): report it now
            raise Interrupted(_received)
    finally:
        _handling = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_reclaimed() -> Iterator[None]:
    """Run a library call that installs signal handlers of its own, then install fastmer's
    again. Ray's ``init`` does: its SIGTERM handler exits the driver (``sys.exit(15)``) without
    stopping Ray's processes; a signal during the call is turned into :class:`Interrupted`."""
    if not (_handling and threading.current_thread() is threading.main_thread()):
        yield
        return
    try:
        yield
    except SystemExit as exc:
        if exc.code in EXIT_STATUS:  # the library's handler, for a signal that arrived meanwhile
            raise Interrupted(int(exc.code)) from None
        raise
    finally:
        for signum in EXIT_STATUS:
            signal.signal(signum, _raise)


def interrupted_status(exc: BaseException) -> int:
    """The exit status of an interrupted command: 143 after SIGTERM, else 130."""
    return EXIT_STATUS[signal.SIGTERM] if isinstance(exc, Interrupted) and exc.signum == signal.SIGTERM \
        else EXIT_STATUS[signal.SIGINT]


def stop_everything(exc: BaseException, echo: Callable[[str], None]) -> int:
    """After an interruption: stop the workers and a local Ray instance, say what was kept;
    returns the exit status. A second signal during this is ignored (it would abort the cleanup)."""
    _cleanup_started.set()
    for signum in EXIT_STATUS:
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signum, signal.SIG_IGN)
    stop_children()
    _stop_ray()
    stop_descendants()
    stopped = _stopped
    name = exc.args[0] if isinstance(exc, Interrupted) else "SIGINT"
    workers = f"; {stopped} worker process{'es' if stopped != 1 else ''} stopped" if stopped else ""
    echo(f"interrupted ({name}){workers}: {_kept()}")
    return interrupted_status(exc)


def stop_children(grace: float = GRACE_SECONDS) -> int:
    """Terminate this process's multiprocessing children (pool workers), kill those still alive
    after ``grace`` seconds; returns how many there were."""
    global _stopped
    children = multiprocessing.active_children()
    _stopped += len(children)
    for child in children:
        with contextlib.suppress(OSError, AttributeError):
            child.terminate()
    for child in children:
        child.join(grace)
    for child in children:
        if child.is_alive():
            with contextlib.suppress(OSError, AttributeError):
                child.kill()
            child.join(grace)
    return len(children)


def _descendants() -> list[int]:
    """Every process below this one (Linux: from /proc; elsewhere none are found)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
                parents[int(entry.name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found: list[int] = []
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - set(found)
        found += sorted(frontier)
    return found


def stop_descendants(grace: float = GRACE_SECONDS) -> int:
    """Terminate whatever processes are still below this one (what a library started: Ray's
    agents outlive ``ray.shutdown`` by half a minute), killing those alive after ``grace``;
    returns how many were killed."""
    global _stopped
    pids = [pid for pid in _descendants() if _running(pid) and not _is_resource_tracker(pid)]
    _stopped += len(pids)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = [pid for pid in pids if _running(pid)]
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _is_resource_tracker(pid: int) -> bool:
    """multiprocessing's resource tracker ignores SIGTERM and ends by itself when this process
    does (its pipe from us closes): waiting for it would only add the grace period."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
        return b"multiprocessing.resource_tracker" in f.read()
    return False


def _running(pid: int) -> bool:
    """Not ended (a zombie has ended: only its parent's wait is missing)."""
    with contextlib.suppress(OSError, ValueError):
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _stop_ray() -> None:
    ray = sys.modules.get("ray")
    if ray is not None:
        with contextlib.suppress(Exception):  # a cleanup: whatever state Ray is in, go on
            if ray.is_initialized():
                ray.shutdown()


def worker_setup(parent: int | None = None) -> None:
    """In a worker process: ignore SIGINT (the parent stops it) and die with the parent
    (``parent``: its pid, to notice a parent that died before this ran)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # ignored from now on, not held pending
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _init(parent: int, initializer: Callable[..., None] | None, *args: Any) -> None:
    worker_setup(parent)
    if initializer is not None:
        initializer(*args)


class _QuietSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that starts with SIGINT blocked: a Ctrl-C while it is still importing
    (before :func:`worker_setup` runs) must not end it with a traceback; the parent stops it."""

    def start(self) -> None:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class _QuietSpawnContext(multiprocessing.context.SpawnContext):
    Process = _QuietSpawnProcess


def new_process_pool(workers: int, *, mp_context: Any = None, initializer: Callable[..., None] | None = None,
                     initargs: tuple = ()) -> ProcessPoolExecutor:
    """A :class:`ProcessPoolExecutor` (spawn by default) whose workers run :func:`worker_setup`
    before ``initializer``; stop it with :func:`stop_pool` on an error or an interruption."""
    context = mp_context or multiprocessing.get_context("spawn")
    if context.get_start_method() == "spawn" and hasattr(signal, "pthread_sigmask"):
        context = _QuietSpawnContext()
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init,
                               initargs=(os.getpid(), initializer, *initargs))


def stop_pool(pool: Executor) -> None:
    """Cancel a pool's pending tasks and, for processes, stop the workers now rather than
    waiting for their running tasks (threads cannot be stopped: their tasks finish)."""
    pool.shutdown(wait=False, cancel_futures=True)
    if isinstance(pool, ProcessPoolExecutor):
        stop_children()
    pool.shutdown(wait=True)


@contextlib.contextmanager
def process_pool(workers: int, **options: Any) -> Iterator[ProcessPoolExecutor]:
    """:func:`new_process_pool` as a context manager: on any exception or interruption in the
    body the workers are stopped at once (:func:`stop_pool`) instead of finishing their tasks."""
    pool = new_process_pool(workers, **options)
    try:
        yield pool
    except BaseException:
        stop_pool(pool)
        raise
    finally:
        pool.shutdown(wait=True)
