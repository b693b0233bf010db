"""Run workers forked from a copy of `volaris-daemon` made before the daemon starts its threads.

A `dagster api execute_run` worker imports Dagster, pandas and this project afresh: ~175 MB of
its own, beside the daemon's ~175 MB of the same code (bench_day at fa927a4: 498 MB RSS and
430 MB PSS at peak on the 512 MB box). A process forked after the import shares those pages
with the daemon, copy-on-write, and pays only for what it changes. The daemon cannot fork run
workers itself: by the time a run starts it runs a dozen threads, and a fork copies whatever
locks they hold at that instant. So `volaris-daemon` imports the code location first, moves
everything it made out of the garbage collector's sight (`gc.freeze`: a collection writes into
each object it visits and would unshare its page), and forks one helper, the fork server,
while it is still single-threaded. The fork server waits on a socket; for each run the daemon's
launcher sends the run's `ExecuteRunArgs` and gets back the pid of a worker forked for it, which
executes the run exactly as `dagster api execute_run` does, in a session of its own.

What it saves depends on how much of the shared code the daemon and the worker write to (each
page either one writes becomes a private copy): `python -m bench.bench_footprint --quick` gave
322 MB PSS at peak against 341 MB with `dagster api execute_run` workers (the summed RSS rises,
383 to 516 MB, because it counts every shared page once per process, the fork server's too).

If the fork server is gone (killed, or never started because something had started a thread),
`spawn` returns None and the launcher starts `dagster api execute_run` as a process of its own,
as before.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import signal
import socket
import struct
import sys
import threading
import traceback

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")
_PID = struct.Struct("!q")


class ForkServer:
    """The daemon's end of the fork server: `spawn` one worker per run, from any thread."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self._channel = channel
        self._lock = threading.Lock()
        self._gone = False

    @classmethod
    def start(cls) -> ForkServer:
        """Fork the server from this (single-threaded) process."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            ours.close()
            _serve(theirs)  # never returns
        theirs.close()
        return cls(pid, ours)

    def spawn(self, execute_run_args: str) -> int | None:
        """Fork a worker for one run (`execute_run_args`: a serialized `ExecuteRunArgs`);
        its pid, or None when the server is gone."""
        payload = execute_run_args.encode()
        with self._lock:
            if self._gone:
                return None
            try:
                self._channel.sendall(_LENGTH.pack(len(payload)) + payload)
                pid = _PID.unpack(_receive(self._channel, _PID.size))[0]
            except (OSError, EOFError):
                self._gone = True
                _reap(self.pid)
                logger.warning(
                    "the run fork server (pid %d) is gone: runs start as new processes", self.pid
                )
                return None
        return pid if pid > 0 else None

    def close(self) -> None:
        """End the server (it exits when its socket closes); workers in flight go on."""
        self._channel.close()
        _reap(self.pid, block=True)


_server: ForkServer | None = None


def host_here(code_module: str) -> None:
    """Called by `volaris-daemon` before anything starts a thread: import `code_module`, freeze
    what the import made, and fork the server. Does nothing (and runs start as processes)
    when a thread is already running, since forking then could copy a held lock."""
    global _server
    importlib.import_module(code_module)
    if threading.active_count() > 1:
        names = ", ".join(t.name for t in threading.enumerate())
        logger.warning("threads already running (%s): runs start as new processes", names)
        return
    gc.collect()
    gc.freeze()
    _server = ForkServer.start()


def spawn(execute_run_args: str) -> int | None:
    """A forked worker's pid for one run, or None when this process hosts no fork server."""
    return _server.spawn(execute_run_args) if _server is not None else None


def _serve(channel: socket.socket) -> None:
    """The server's loop: a worker per request, until the daemon closes the socket."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the workers
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Ctrl-C at the daemon ends it quietly
    while True:
        try:
            (length,) = _LENGTH.unpack(_receive(channel, _LENGTH.size))
            payload = _receive(channel, length).decode()
        except (OSError, EOFError):
            os._exit(0)
        try:
            pid = os.fork()
        except OSError:
            pid = -1  # out of memory or processes: the launcher starts the run itself
        if pid == 0:
            channel.close()
            _work(payload)  # never returns
        channel.sendall(_PID.pack(pid))


def _work(execute_run_args: str) -> None:
    """Execute one run as `dagster api execute_run` would, then exit with its code."""
    os.setsid()  # a Ctrl-C or SIGTERM aimed at the daemon's group leaves the run alone
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the run's own subprocesses are waited on
    from volaris_assets.dagster_internals import api_cli

    code = 0
    try:
        api_cli.main(["execute_run", execute_run_args], prog_name="dagster api")
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # noqa: BLE001 - the worker reports and exits, whatever happened
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _receive(channel: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = channel.recv(size - len(data))
        if not chunk:
            raise EOFError("the other end closed the socket")
        data += chunk
    return data


def _reap(pid: int, block: bool = False) -> None:
    try:
        os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        pass
