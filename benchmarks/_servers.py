"""Start and stop the cache servers a benchmark compares with: ``redis-server`` and ``memcached``, on loopback.

Each server is started by the benchmark itself on a free TCP port of
127.0.0.1 (Redis can also listen on a unix socket), waited for until it
answers a request, and stopped when the benchmark ends, also after an
exception or Ctrl-C.  Nothing here imports a benchmark module, so every
benchmark can use it.

The API:

- ``running(names, notes, budget=..., directory=None, redis_unix_socket=False)``,
  a context manager: starts every named server it can (``REDIS``,
  ``MEMCACHED``), appends a note for each one started or skipped, yields
  ``{name: Server}`` for those that answered, and stops them all on the way
  out (and removes the temporary directory holding their logs and socket).
- ``start_server(name, directory, budget, unix_socket=None)``: start one
  server and return its ``Server`` (``stop()`` it yourself); raises
  ``ServerError`` when the binary is missing or the server does not answer
  within ``budget`` seconds.
- ``stopped_by_sigterm()``: a context manager under which SIGTERM raises
  ``KeyboardInterrupt``, as Ctrl-C does, so that ``finally`` blocks (and
  ``running``) stop the servers either way.
- ``binary(name)``: the server's executable on ``PATH``, or None.

Redis runs without persistence (``--save "" --appendonly no``); memcached
with UDP off (``-U 0``) and ``MEMCACHED_MEMORY_MB`` of memory, enough for
the largest default workload (100,000 values of 1 KiB), so that nothing is
evicted during a run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LOOPBACK",
    "MEMCACHED",
    "QUICK_SERVER_START_SECONDS",
    "REDIS",
    "SERVERS",
    "SERVER_START_SECONDS",
    "Server",
    "ServerError",
    "binary",
    "free_port",
    "running",
    "start_server",
    "stopped_by_sigterm",
]

REDIS = "redis"
MEMCACHED = "memcached"
LOOPBACK = "127.0.0.1"
#: How long a server gets to answer after it is started (a quick run gives it less).
SERVER_START_SECONDS = 10.0
QUICK_SERVER_START_SECONDS = 2.0
SERVER_STOP_SECONDS = 5.0
#: memcached's memory limit (-m): its default, 64 MiB, would evict part of a 100,000 x 1 KiB workload.
MEMCACHED_MEMORY_MB = 1024
#: A unix socket path must fit in sockaddr_un (108 bytes on Linux, 104 on macOS).
_MAX_SOCKET_PATH = 100

#: Per server: its program, the request that checks it answers, and the start of the answer.
SERVERS = {
    REDIS: ("redis-server", b"PING\r\n", b"+PONG"),
    MEMCACHED: ("memcached", b"version\r\n", b"VERSION "),
}


class ServerError(Exception):
    """A server could not be started: its binary is missing, it exited, or it did not answer in time."""


@dataclass
class Server:
    """A server started on a loopback port (and, for Redis, maybe a unix socket), with its output in a log file."""

    name: str
    binary: str
    version: str | None
    port: int
    process: subprocess.Popen[bytes]
    log: str
    unix_socket: str | None = None

    @property
    def program(self) -> str:
        return SERVERS[self.name][0]

    def describe(self) -> str:
        """E.g. ``redis-server 7.0.15 on 127.0.0.1:40123 and unix socket /tmp/.../redis.sock``."""
        where = f"{LOOPBACK}:{self.port}" + (f" and unix socket {self.unix_socket}" if self.unix_socket else "")
        return f"{self.program} {self.version or '(version unknown)'} on {where}"

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit within a few seconds); idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(SERVER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def binary(name: str) -> str | None:
    """The executable of server ``name`` (``REDIS`` or ``MEMCACHED``) on ``PATH``, or None."""
    return shutil.which(SERVERS[name][0])


def free_port() -> int:
    """A TCP port free on loopback now (the server started on it may still lose a race for it; it is retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def server_command(name: str, program: str, port: int, directory: str, unix_socket: str | None = None) -> list[str]:
    """The command line that starts server ``name`` on ``port`` of loopback (Redis also on ``unix_socket``)."""
    if name == REDIS:
        command = [
            program,
            *("--bind", LOOPBACK, "--port", str(port), "--save", "", "--appendonly", "no"),
            *("--daemonize", "no", "--dir", directory, "--logfile", ""),
        ]
        if unix_socket is not None:
            command += ["--unixsocket", unix_socket, "--unixsocketperm", "700"]
        return command
    command = [program, "-l", LOOPBACK, "-p", str(port), "-U", "0", "-m", str(MEMCACHED_MEMORY_MB)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # memcached refuses to run as root without a user to run as
        import pwd

        command += ["-u", pwd.getpwuid(0).pw_name]
    return command


def server_version(name: str, program: str) -> str | None:
    """The version the server binary reports (``7.0.15``), or None if it cannot be told."""
    try:
        shown = subprocess.run(
            [program, "--version" if name == REDIS else "-V"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"v=(\S+)" if name == REDIS else r"memcached (\S+)", shown)
    return found.group(1) if found else None


def _answers(address: tuple[str, int] | str, request: bytes, answer: bytes) -> bool:
    """Whether a server answers ``request`` with ``answer`` at ``address`` (a TCP address or a unix socket path)."""
    try:
        if isinstance(address, str):
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.settimeout(0.5)
            connection.connect(address)
        else:
            connection = socket.create_connection(address, timeout=0.5)
        with connection:
            connection.sendall(request)
            return connection.recv(64).startswith(answer)
    except OSError:
        return False


def _log_tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return " / ".join(line.strip() for line in handle.readlines()[-3:] if line.strip())
    except OSError:
        return ""


def start_server(name: str, directory: str, budget: float, unix_socket: str | None = None) -> Server:
    """Start server ``name`` on a free loopback port and wait until it answers; ``ServerError`` if it cannot.

    ``directory`` holds its log (and is Redis's working directory);
    ``unix_socket`` (Redis only) is a path where it also listens.  A server
    that exits at once (say, it lost the race for its port) is retried on
    another port, three times in all.  The caller stops the server.
    """
    program, request, answer = SERVERS[name]
    found = shutil.which(program)
    if found is None:
        raise ServerError(f"{program} is not installed (e.g. apt-get install {program})")
    if unix_socket is not None and name != REDIS:
        raise ServerError(f"{program}: only redis-server is started on a unix socket here")
    version = server_version(name, found)
    deadline = time.monotonic() + budget
    failure = ""
    for attempt in range(3):
        port = free_port()
        log = os.path.join(directory, f"{name}-{attempt}.log")
        with open(log, "wb") as output:
            process = subprocess.Popen(
                server_command(name, found, port, directory, unix_socket),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        server = Server(name, found, version, port, process, log, unix_socket)
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    failure = f"{program} exited with status {process.returncode}: {_log_tail(log)}"
                    break
                if _answers((LOOPBACK, port), request, answer) and (
                    unix_socket is None or _answers(unix_socket, request, answer)
                ):
                    return server
                time.sleep(0.02)
            else:
                raise ServerError(f"{program} did not answer on port {port} within {budget:g} s")
        except BaseException:  # a timeout, Ctrl-C: a server not returned must not outlive this call
            server.stop()
            raise
        server.stop()  # it exited: try again on another port
    raise ServerError(failure)


def _socket_directory(directory: str) -> str:
    """``directory`` if a socket path in it fits in sockaddr_un, else a new short temporary directory."""
    if len(os.path.join(directory, "redis.sock")) <= _MAX_SOCKET_PATH:
        return directory
    return tempfile.mkdtemp(prefix="ck-", dir="/tmp" if os.path.isdir("/tmp") else None)


@contextlib.contextmanager
def running(
    names: Iterable[str],
    notes: list[str],
    *,
    budget: float = SERVER_START_SECONDS,
    directory: str | None = None,
    redis_unix_socket: bool = False,
) -> Iterator[dict[str, Server]]:
    """Start each server in ``names`` (once each), yield ``{name: Server}`` for those that answered, stop them all.

    A server that cannot be started (binary missing, exits, no answer within
    ``budget`` seconds) is left out with a note; one that started gets a note
    saying where it listens.  With ``redis_unix_socket``, Redis also listens
    on a unix socket (``Server.unix_socket``).  The logs (and the socket) go
    to ``directory``, by default a new temporary directory that is removed on
    the way out.  The servers are stopped on the way out whatever happens:
    an exception, Ctrl-C, or SIGTERM under ``stopped_by_sigterm()``.
    """
    wanted = list(dict.fromkeys(names))
    made = [] if directory is not None else [tempfile.mkdtemp(prefix="cachekit-servers-")]
    where = directory if directory is not None else made[0]
    servers: dict[str, Server] = {}
    try:
        for name in wanted:
            socket_path = None
            if name == REDIS and redis_unix_socket:
                socket_directory = _socket_directory(where)
                if socket_directory != where:
                    made.append(socket_directory)
                socket_path = os.path.join(socket_directory, "redis.sock")
            try:
                server = start_server(name, where, budget, socket_path)
            except (ServerError, OSError) as error:  # OSError: the binary cannot be run
                notes.append(f"{SERVERS[name][0]} could not be started: {error}")
                continue
            servers[name] = server
            extra = " without persistence (--save '' --appendonly no)" if name == REDIS else ""
            notes.append(f"{server.describe()}: started by the benchmark{extra}, stopped at the end")
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """Let SIGTERM interrupt the run as Ctrl-C does, so that the servers it started are stopped either way."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
