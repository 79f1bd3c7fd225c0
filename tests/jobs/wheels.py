"""Small real wheels and a local HTTPS server with a self-signed certificate, for update tests."""

from __future__ import annotations

import base64
import hashlib
import http.server
import ssl
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

PACKAGE = "difronte_fake_agent"

_AGENT = '''"""A stand-in agent: writes a healthy agent's status file, stays silent, or crashes."""

import json
import sys
import time

VERSION = {version!r}
BEHAVIOUR = {behaviour!r}


def main() -> int:
    if BEHAVIOUR == "crash":
        return 1
    if BEHAVIOUR == "silent":  # starts, but never connects nor says it is healthy
        return 0
    state_dir = sys.argv[1]
    status = {{"connected": True, "agent_version": VERSION, "updated": time.time()}}
    with open(state_dir + "/status.json", "w") as fh:
        json.dump(status, fh)
    return 0
'''


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(directory: Path, version: str, *, behaviour: str = "healthy") -> Path:
    """A pure-Python wheel whose ``difronte-edge`` plays a healthy, silent or crashing agent."""
    dist = f"{PACKAGE}-{version}.dist-info"
    files = {
        f"{PACKAGE}/__init__.py": _AGENT.format(version=version, behaviour=behaviour).encode(),
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: difronte-fake-agent\nVersion: {version}\n"
        ).encode(),
        f"{dist}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: difronte-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
        f"{dist}/entry_points.txt": (
            f"[console_scripts]\ndifronte-edge = {PACKAGE}:main\n".encode()
        ),
    }
    record = [_record_line(name, data) for name, data in files.items()]
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{PACKAGE}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, made with openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=difronte-test-updates", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def https_server(root: Path, cert: Path, key: Path) -> Iterator[str]:
    """Serve ``root`` over HTTPS on 127.0.0.1; yields the base URL."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
