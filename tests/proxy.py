"""A loopback TCP proxy the test controls, to play a network that fails silently.

`blackhole()` makes it stop forwarding in both directions without closing any
socket: to the server, the caller's machine has vanished (no FIN, no RST, no
answer to anything), which only the server's keepalive can notice. It also
counts connections and records when the server closed one, so tests can see
GOAWAY-and-close (connection age) from outside the server.
"""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType
from typing import Self


class LoopbackProxy:
    """127.0.0.1:<port> forwarding to `target` on a thread of its own."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host.strip("[]"), int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._upstreams: dict[socket.socket, int] = {}
        self._frozen = threading.Event()
        self._stopping = threading.Event()
        self.lock = threading.Lock()
        self.accepted = 0
        # Connections (numbered from 1 as accepted) that the server ended.
        self.closed_by_server: list[int] = []
        self.server_closed = threading.Condition(self.lock)
        self._from_server = 0  # bytes forwarded from the server to callers
        self._moved = threading.Condition(self.lock)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def blackhole(self) -> None:
        """From now on nothing passes either way; every socket stays open."""
        self._frozen.set()
        self._wake_w.send(b"x")

    def wait_from_server(self, count: int, within: float) -> bool:
        """Wait until `count` more bytes have come from the server (pings, answers)."""
        with self._moved:
            target = self._from_server + count
            return self._moved.wait_for(lambda: self._from_server >= target, within)

    def wait_server_closed(self, number: int, within: float) -> bool:
        """Wait until the server has ended connection `number`."""
        with self.server_closed:
            return self.server_closed.wait_for(lambda: number in self.closed_by_server, within)

    def close(self) -> None:
        self._stopping.set()
        self._wake_w.send(b"x")
        self._thread.join(timeout=10)
        for sock in [*self._peers, self._listener, self._wake_r, self._wake_w]:
            sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._wake_r:
                    sock.recv(64)
                    if self._frozen.is_set():
                        self._freeze()
                elif sock is self._listener:
                    self._accept()
                elif sock in self._peers:
                    self._forward(sock)

    def _freeze(self) -> None:
        # Stop reading everything: the kernel's buffers fill, nothing is lost
        # or closed, and nothing arrives anywhere.
        for key in list(self._selector.get_map().values()):
            if key.fileobj is not self._wake_r:
                self._selector.unregister(key.fileobj)

    def _accept(self) -> None:
        caller, _ = self._listener.accept()
        upstream = socket.create_connection(self._target)
        with self.lock:
            self.accepted += 1
            self._upstreams[upstream] = self.accepted
        self._peers[caller] = upstream
        self._peers[upstream] = caller
        for sock in (caller, upstream):
            self._selector.register(sock, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        peer = self._peers[sock]
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if data:
            try:
                peer.sendall(data)
                if sock in self._upstreams:
                    with self._moved:
                        self._from_server += len(data)
                        self._moved.notify_all()
                return
            except OSError:
                pass
        if sock in self._upstreams:
            with self.server_closed:
                self.closed_by_server.append(self._upstreams[sock])
                self.server_closed.notify_all()
        for end in (sock, peer):
            self._selector.unregister(end)
            self._peers.pop(end, None)
            self._upstreams.pop(end, None)
            end.close()
