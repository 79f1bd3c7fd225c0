"""Network namespaces for VPN tests: made per test run, always torn down.

A :class:`Lab` creates namespaces and veth pairs with names unique to this run, runs commands
and programs inside them, and on :meth:`Lab.close` kills every process still inside each of
its namespaces (found by ``ip netns pids``, so wireguard-go daemons and sshd are included) and
deletes the namespaces, which takes their veths and TUN devices with them.

Only the namespaces see the private test addresses; the root namespace never gets one. Devices
reach the test's broker and HTTP server through :class:`TcpForward`: a listener on 127.0.0.1
*inside* a namespace that relays to 127.0.0.1 of the root namespace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
UAPI_DIR = Path("/var/run/wireguard")
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def _thread_in_netns(name: str) -> Iterator[None]:
    """Move the *calling thread* into namespace ``name`` (and back). Use in helper threads."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


def ns_call(name: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
    """Run ``fn`` in a short-lived thread inside namespace ``name``.

    Sockets made there stay in that namespace wherever they are used afterwards.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            with _thread_in_netns(name):
                box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"netns-{name}")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"ns_call in {name} did not finish in {timeout}s")
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


class NetnsLoop:
    """An asyncio loop in a thread of its own that lives inside a namespace.

    Code run there (a TunnelManager, say) sees the namespace as its whole network: netlink,
    sockets and the programs it starts all land inside it.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"netns-loop-{name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"netns loop in {name} did not start: {self._error!r}")

    def _run(self) -> None:
        try:
            with _thread_in_netns(self.name):
                asyncio.set_event_loop(self.loop)
                self._ready.set()
                self.loop.run_forever()
                # Cancel what is left, so nothing runs after the namespace is gone.
                pending = asyncio.all_tasks(self.loop)
                for task in pending:
                    task.cancel()
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` there and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` there; ``.result(timeout)`` waits, ``.cancel()`` cancels it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Call a plain function in the loop's thread."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper(), timeout)

    def close(self) -> None:
        """Stop the loop (cancelling its tasks) and join the thread; idempotent."""
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(20)


class TcpForward:
    """127.0.0.1:``listen_port`` inside a namespace, relayed to 127.0.0.1:``target_port`` here."""

    def __init__(self, ns: str, listen_port: int, target_port: int) -> None:
        self.ns = ns
        self.listen_port = listen_port
        self.target_port = target_port

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", listen_port))
            sock.listen(64)
            return sock

        self._listener = ns_call(ns, make)
        self._closed = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"fwd-{ns}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                inner, _ = self._listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                inner.close()
                continue
            outer.settimeout(None)
            with self._lock:
                self._conns += [inner, outer]
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Stop listening and cut every relayed connection."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.close()
            self._conns.clear()
        self._thread.join(5)


def run(argv: list[str], *, ns: str | None = None, check: bool = True) -> str:
    """Run a command (inside ``ns`` if given); returns stdout, raises with stderr on failure."""
    full = ["ip", "netns", "exec", ns, *argv] if ns else argv
    proc = subprocess.run(full, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(full)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


class Lab:
    """Namespaces, veths and processes of one test run, all removed by :meth:`close`."""

    def __init__(self) -> None:
        # Four hex digits keep interface names within Linux's 15 characters.
        self.tag = secrets.token_hex(2)
        self.namespaces: list[str] = []
        self.interfaces: list[str] = []
        self._links = 0
        self._closers: list[Callable[[], None]] = []
        self._procs: list[subprocess.Popen[bytes]] = []

    def ifname(self, role: str) -> str:
        """A name unique to this run for a WireGuard interface (its UAPI socket is global)."""
        name = f"dv{self.tag}{role}"[:15]
        self.interfaces.append(name)
        return name

    def netns(self, role: str) -> str:
        """Create a namespace (loopback up)."""
        name = f"dfvpn-{self.tag}-{role}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def link(self, ns_a: str, ns_b: str, addr_a: str, addr_b: str) -> None:
        """A veth pair between two namespaces, addressed (CIDR) and up."""
        self._links += 1
        a, b = f"v{self.tag}{self._links}a", f"v{self.tag}{self._links}b"
        run(["ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", b, "netns", ns_b])
        for ns, dev, addr in ((ns_a, a, addr_a), (ns_b, b, addr_b)):
            run(["ip", "-n", ns, "addr", "add", addr, "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "up"])

    def forward(self, ns: str, listen_port: int, target_port: int) -> TcpForward:
        """Relay 127.0.0.1:listen_port in ``ns`` to 127.0.0.1:target_port in the root namespace."""
        fwd = TcpForward(ns, listen_port, target_port)
        self._closers.append(fwd.close)
        return fwd

    def loop(self, ns: str) -> NetnsLoop:
        """An asyncio loop thread inside ``ns``."""
        loop = NetnsLoop(ns)
        self._closers.append(loop.close)
        return loop

    def popen(self, ns: str, argv: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a program inside ``ns`` (killed by close() with everything else in there)."""
        out = log.open("ab")
        try:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv],
                stdout=out,
                stderr=out,
                start_new_session=True,
                **kwargs,
            )
        finally:
            out.close()
        self._procs.append(proc)
        return proc

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` at close (before the namespaces go)."""
        self._closers.append(fn)

    def pids(self, ns: str) -> list[int]:
        """Every process inside ``ns``."""
        out = run(["ip", "netns", "pids", ns], check=False)
        return [int(x) for x in out.split() if x.isdigit() and int(x) != os.getpid()]

    def close(self) -> None:
        """Tear everything down; safe to call twice, keeps going past errors."""
        errors: list[str] = []
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as exc:
                errors.append(repr(exc))
        self._closers.clear()
        for ns in self.namespaces:
            self._kill_all(ns)
        for child in self._procs:  # reap our own children (they were in the namespaces)
            if child.poll() is None:
                child.kill()
            child.wait(10)
        self._procs.clear()
        for ns in self.namespaces:
            done = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if done.returncode != 0 and "No such file" not in done.stderr:
                errors.append(f"ip netns del {ns}: {done.stderr.strip()}")
        self.namespaces.clear()
        for ifname in self.interfaces:
            # A killed wireguard-go may leave its socket behind.
            (UAPI_DIR / f"{ifname}.sock").unlink(missing_ok=True)
        if errors:
            raise RuntimeError("lab cleanup: " + "; ".join(errors))

    def _kill_all(self, ns: str) -> None:
        pids = self.pids(ns)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                pids = [pid for pid in pids if _alive(pid)]
                if not pids:
                    return
                time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        # Reap our own children; others (daemonized wireguard-go) are reaped by init.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/status").read_text().count("State:\tZ")


# -- probes ---------------------------------------------------------------------------------


class UdpEcho:
    """A UDP echo server inside a namespace (a thread of the test process)."""

    def __init__(self, ns: str, port: int = 7, host: str = "0.0.0.0") -> None:
        def make() -> socket.socket:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:  # leave IPv4 to its own echo
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            return sock

        self.sock = ns_call(ns, make)
        self.port = port
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(2048)
                if peer is None:  # shut down
                    return
                self.sock.sendto(data, peer)
            except OSError:
                return

    def close(self) -> None:
        """Stop serving."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


def udp_reaches(ns: str, address: str, port: int = 7, timeout: float = 1.0) -> bool:
    """True when a datagram sent from ``ns`` to ``address`` comes back within ``timeout``."""

    def probe() -> bool:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            token = secrets.token_bytes(8)
            try:
                sock.sendto(token, (address, port))
                while True:
                    data, _ = sock.recvfrom(2048)
                    if data == token:
                        return True
            except OSError:  # timeout, or no route to host
                return False

    return ns_call(ns, probe, timeout=timeout + 10)


def wg_show(ns: str, ifname: str) -> str:
    """``wg show <ifname> dump`` from inside ``ns``."""
    return run(["wg", "show", ifname, "dump"], ns=ns)


def wg_peers(ns: str, ifname: str) -> dict[str, list[str]]:
    """Public key -> allowed IPs of an interface, read with the real ``wg`` tool."""
    peers: dict[str, list[str]] = {}
    for line in wg_show(ns, ifname).splitlines()[1:]:
        fields = line.split("\t")
        allowed = fields[3]
        peers[fields[0]] = [] if allowed == "(none)" else allowed.split(",")
    return peers


class WgHub:
    """A WireGuard hub interface (wireguard-go) inside a namespace, set up with the real tools."""

    def __init__(
        self, ns: str, ifname: str, key_dir: Path, *, address: str, port: int = 51820
    ) -> None:
        from edge.vpn.keys import KeyStore, public_key, to_base64

        self.ns = ns
        self.ifname = ifname
        self.port = port
        self.private_key = KeyStore(key_dir).load_or_create()
        self.public_key = to_base64(public_key(self.private_key))
        env = {**os.environ, "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
        subprocess.run(
            ["ip", "netns", "exec", ns, "wireguard-go", ifname],
            check=True,
            capture_output=True,
            env=env,
            timeout=30,
        )
        key_file = key_dir / "private.key"
        run(["wg", "set", ifname, "private-key", str(key_file), "listen-port", str(port)], ns=ns)
        run(["ip", "addr", "add", address, "dev", ifname], ns=ns)
        run(["ip", "link", "set", ifname, "up"], ns=ns)

    def peers(self) -> dict[str, list[str]]:
        """Public key -> allowed IPs, as ``wg show`` says."""
        return wg_peers(self.ns, self.ifname)

    def handshake(self, public_key: str) -> int:
        """The peer's latest handshake (epoch seconds; 0: never)."""
        for line in wg_show(self.ns, self.ifname).splitlines()[1:]:
            fields = line.split("\t")
            if fields[0] == public_key:
                return int(fields[4])
        return 0

    def set_peer(self, public_key: str, allowed_ips: list[str]) -> None:
        """Add or update a peer, with exactly these allowed IPs."""
        run(
            ["wg", "set", self.ifname, "peer", public_key, "allowed-ips", ",".join(allowed_ips)],
            ns=self.ns,
        )

    def remove_peer(self, public_key: str) -> None:
        """Remove a peer."""
        run(["wg", "set", self.ifname, "peer", public_key, "remove"], ns=self.ns)


class TcpSession:
    """One TCP connection from ``client_ns`` to ``address`` in ``server_ns``, kept open to show
    that a change (new peers, a new key) did not tear the tunnel down."""

    def __init__(
        self, lab: Lab, *, server_ns: str, client_ns: str, address: str, port: int = 2222
    ) -> None:
        def listen() -> socket.socket:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((address, port))
            s.listen(1)
            return s

        self.listener = ns_call(server_ns, listen)
        self.client = ns_call(client_ns, lambda: socket.create_connection((address, port), 10))
        self.server, _ = self.listener.accept()
        for s in (self.client, self.server):
            s.settimeout(20)  # TCP retransmits across a short gap; it never reconnects
        lab.on_close(self.close)

    def exchange(self, data: bytes) -> None:
        """Send ``data`` both ways on the same connection."""
        self.client.sendall(data)
        assert _recv_exactly(self.server, len(data)) == data
        self.server.sendall(data[::-1])
        assert _recv_exactly(self.client, len(data)) == data[::-1]

    def close(self) -> None:
        """Close all three sockets."""
        for s in (self.client, self.server, self.listener):
            s.close()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data
