"""A real redis-server for the tests: on 127.0.0.1 only, on a free port, with a random
password, its files in a temporary folder. Stopped and restarted on the same port to test
what a run does when the server goes away."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

#: Where the server listens: the tests never talk to any other address.
HOST = "127.0.0.1"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def require_redis_server() -> str:
    """The path of redis-server; skip the test when there is none, or fail under
    ``DASKBIO_REQUIRE_REDIS=1`` (.ci/run sets it, so that CI cannot pass without it)."""
    found = shutil.which("redis-server")
    if found is None:
        why = "redis-server is not installed (Debian package redis-server)"
        if os.environ.get("DASKBIO_REQUIRE_REDIS") == "1":
            pytest.fail(f"{why}, and DASKBIO_REQUIRE_REDIS=1")
        pytest.skip(why)
    return found


def require_loopback(url: str) -> str:
    """``url``, once it is known to name a server on this machine."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "unix" and parts.hostname not in LOOPBACK:
        pytest.fail(f"the tests only use a Redis server on 127.0.0.1, not {parts.hostname}")
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process this test session started.

    Parameters
    ----------
    folder : Path
        Its config, log and data files.
    appendonly : bool
        Whether it keeps an append-only file (``appendfsync everysec``), so that its
        records survive a restart; without, a restart empties it.
    """

    def __init__(self, folder: Path, appendonly: bool = True) -> None:
        self.folder = folder
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "redis.conf"
        # In a file of its own, not on the command line, where ps shows it to everyone.
        config.write_text(
            f"bind {HOST}\nport {self.port}\nrequirepass {self.password}\n"
            f"unixsocket {self.socket}\nunixsocketperm 700\n"
            f'dir {folder}\nlogfile {folder / "redis.log"}\nsave ""\n'
            f"appendonly {'yes' if appendonly else 'no'}\nappendfsync everysec\n"
        )
        config.chmod(0o600)

    @property
    def socket(self) -> Path:
        """Its unix socket (owner-only)."""
        return self.folder / "redis.sock"

    @property
    def url(self) -> str:
        """``redis://:<password>@127.0.0.1:<port>/0``."""
        return f"redis://:{self.password}@{HOST}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.process = subprocess.Popen(
            [require_redis_server(), str(self.folder / "redis.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"redis-server did not come up on port {self.port}:\n{log}")
            time.sleep(0.05)
        return self

    def answers(self) -> bool:
        """Whether the server answers PING (with the password)."""
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1.0).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM: it writes its append-only file and exits)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, down: float = 0.0) -> None:
        """Stop the server, wait ``down`` seconds, and start it again on the same port."""
        self.stop()
        time.sleep(down)
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
