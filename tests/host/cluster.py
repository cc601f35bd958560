"""Real ``simsi serve`` processes on 127.0.0.1 for the host tests.

All hosts listen on 127.0.0.1, so they differ only by port. The host ids are
therefore the port numbers themselves: the pattern ``{20000..20002}`` names
hosts ``20000``, ``20001`` and ``20002``, and the peer URL template
``http://127.0.0.1:{host}`` reaches each one at its own port.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.host.helpers import EXAMPLE_APP, REPO

START_TIMEOUT = 30.0


def free_port_block(count: int) -> int:
    """Return the first of ``count`` consecutive ports that are free on 127.0.0.1."""
    for _ in range(100):
        base = random.randint(20000, 60000 - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports found on 127.0.0.1")


def http_get(url: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, Any]:
    """GET ``url`` and return the status and the JSON body (or text for non-JSON)."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


class HostProcess:
    """One ``simsi serve`` subprocess, its arguments and its log file."""

    def __init__(self, host_id: str, args: list[str], env: dict[str, str], log_path: Path):
        self.host_id = host_id
        self.args = args
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{host_id}"

    def start(self) -> None:
        """Start the process, appending to its log file."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        command = [sys.executable, "-m", "simsi.cli", "serve", *self.args]
        self.process = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process."""
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit and return its exit code."""
        assert self.process is not None
        return self.process.wait(timeout)

    def alive(self) -> bool:
        """Return whether the process is running."""
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        """Return everything the process logged so far."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, token: str | None, timeout: float = START_TIMEOUT) -> None:
        """Poll ``/readyz`` until it returns 200; fail with the log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"host {self.host_id} exited early:\n{self.log()}")
            try:
                status, _body = http_get(self.url + "/readyz", token, timeout=1.0)
            except OSError:
                status = 0
            if status == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"host {self.host_id} not ready in {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the process with SIGTERM, then SIGKILL if it does not exit in 10 s."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class Cluster:
    """``count`` hosts of one pattern, each with its own SQLite store in ``directory``."""

    def __init__(
        self,
        directory: Path,
        count: int = 3,
        *,
        token: str | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        shards: int = 1024,
    ) -> None:
        self.base = free_port_block(count)
        self.pattern = f"{{{self.base}..{self.base + count - 1}}}"
        self.token = token
        self.shards = shards
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("SIMSI_")}
        child_env.update(env or {})
        child_env["PYTHONUNBUFFERED"] = "1"
        if token:
            child_env["SIMSI_AUTH_TOKEN"] = token
        self.hosts: list[HostProcess] = []
        for port in range(self.base, self.base + count):
            host_id = str(port)
            args = [
                "--app", EXAMPLE_APP,
                "--host-id", host_id,
                "--hosts", self.pattern,
                "--shards", str(shards),
                "--store", f"sqlite:///{directory}/simsi-{{host}}.db",
                "--listen", f"127.0.0.1:{port}",
                "--peer-url", "http://127.0.0.1:{host}",
                *extra_args,
            ]  # fmt: skip
            log_path = directory / f"host-{host_id}.log"
            self.hosts.append(HostProcess(host_id, args, child_env, log_path))

    def start(self) -> Cluster:
        """Start every host and wait until each is ready."""
        for host in self.hosts:
            host.start()
        for host in self.hosts:
            host.wait_ready(self.token)
        return self

    def stop(self) -> None:
        """Stop every host that still runs."""
        for host in self.hosts:
            host.stop()

    def host(self, host_id: str) -> HostProcess:
        """Return the host with id ``host_id``."""
        return next(host for host in self.hosts if host.host_id == host_id)

    def headers(self) -> dict[str, str]:
        """Return the headers a client of this cluster sends."""
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {}
