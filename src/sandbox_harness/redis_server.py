"""A test Redis of our own: a `redis-server` on loopback, optionally with a password, TLS and an AOF.

Tests that restart, crash or lock down the broker use this instead of the machine's shared Redis.
With ``persistent`` the append-only file is fsynced on every write, so even a SIGKILL loses nothing.
With ``tls`` a throwaway CA and a server certificate for 127.0.0.1/localhost are made with
``openssl`` under ``root/tls`` (once; a restart reuses them); clients verify against ``ca_file``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_SERVER_EXTENSIONS = """basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = IP:127.0.0.1, DNS:localhost
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """Return (CA cert, server cert, server key) under ``directory``, creating them if missing."""
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, cert = directory / "server.key", directory / "server.crt"
    if ca_cert.exists() and cert.exists() and key.exists():
        return ca_cert, cert, key
    directory.mkdir(parents=True, exist_ok=True)
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *curve, "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "30",
        "-subj", "/CN=deploy-agent test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    csr, extensions = directory / "server.csr", directory / "server.ext"
    extensions.write_text(_SERVER_EXTENSIONS)
    _openssl("req", "-new", *curve, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "30", "-extfile", str(extensions),
    )  # fmt: skip
    return ca_cert, cert, key


class LocalRedis:
    """`redis-server` on 127.0.0.1:port (0: a free port, kept across restarts), its files under ``root``.

    Use as a context manager, or ``start()`` / ``stop()``. ``url`` is what clients connect to
    (``rediss://`` with TLS; the password URL-encoded); with TLS, verify against ``ca_file``.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        root: Path,
        password: str | None = None,
        tls: bool = False,
        persistent: bool = True,
    ) -> None:
        self.port = port or _free_port()
        self.root = root
        self.password = password
        self.tls = tls
        self.persistent = persistent
        self.log_path = root / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._tls_files: tuple[Path, Path, Path] | None = None

    @property
    def url(self) -> str:
        """Return ``redis[s]://[:PASSWORD@]127.0.0.1:PORT`` (no database number)."""
        scheme = "rediss" if self.tls else "redis"
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path | None:
        """Return the CA certificate clients verify the server with (None without TLS)."""
        return self._tls_files[0] if self._tls_files else None

    def client(self, db: int = 0, retry: Retry | None = None) -> redis.Redis:
        """Return a redis-py client for database ``db`` (TLS verified against ``ca_file``)."""
        options: dict[str, Any] = {"socket_timeout": 2}
        if self.ca_file:
            options["ssl_ca_certs"] = str(self.ca_file)
        if retry is not None:
            options["retry"] = retry
        return redis.Redis.from_url(f"{self.url}/{db}", **options)

    def _command(self) -> list[str]:
        command = [
            "redis-server",
            "--bind", "127.0.0.1",
            "--dir", str(self.root.resolve()),
            "--logfile", str(self.log_path.resolve()),
            "--daemonize", "no",
            "--save", "",
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        if self.persistent:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        if self.password:
            command += ["--requirepass", self.password]
        if self._tls_files:
            ca, cert, key = self._tls_files
            command += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(cert),
                "--tls-key-file", str(key),
                "--tls-ca-cert-file", str(ca),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        else:
            command += ["--port", str(self.port)]
        return command

    def start(self, timeout_seconds: float = 20.0) -> LocalRedis:
        """Start the server and return self once it answers PING (its AOF, if any, loaded)."""
        if self._process is not None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        if self.tls:
            self._tls_files = make_tls_files(self.root / "tls")
        self._process = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self._wait_ready(timeout_seconds)
        return self

    def _wait_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        probe = self.client(retry=Retry(NoBackoff(), 0))  # this loop is the retry
        try:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    break
                try:
                    if probe.ping():
                        return
                except redis.RedisError:
                    pass  # not listening yet, or still loading its AOF
                time.sleep(0.05)
        finally:
            probe.close()
        self.stop()
        raise RuntimeError(f"redis-server on 127.0.0.1:{self.port} did not start; see {self.log_path}")

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Stop the server gracefully (SIGTERM: redis flushes its AOF and exits)."""
        self._end(signal.SIGTERM, timeout_seconds)

    def kill(self) -> None:
        """Stop the server the way a crash does (SIGKILL)."""
        self._end(signal.SIGKILL, 10.0)

    def restart(self, crash: bool = False) -> LocalRedis:
        """Stop (SIGKILL with ``crash``, else SIGTERM), start on the same port; return once it answers."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()

    def _end(self, sig: signal.Signals, timeout_seconds: float) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(timeout_seconds)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    @property
    def pid(self) -> int | None:
        """Return the server's process id while it runs."""
        return None if self._process is None else self._process.pid

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
