"""Cameras on loopback for the tests: an HTTP camera (a JPEG snapshot URL and an MJPEG stream,
behind Digest or Basic authentication) serving pictures of the current moment, a camera that
accepts connections and never answers, and a GStreamer RTSP server in a subprocess."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

from tests.camera.pattern import jpeg_frame
from tests.conftest import free_port, require_service

USER, PASSWORD = "viewer", "s3cret:pass"
REALM = "camera"

Auth = Literal["digest", "basic", "none"]


class HttpCameraServer:
    """`/snapshot.jpg` answers one picture of now; `/stream.mjpg` sends `fps` pictures a second
    as multipart/x-mixed-replace. `garbage = True` makes both send random bytes instead."""

    def __init__(
        self, auth: Auth = "digest", fps: float = 10.0, port: int = 0, shift: float = 0.0
    ) -> None:
        self.auth = auth
        self.fps = fps
        self.shift = shift  # pictures show a moment this far from now, to tell cameras apart
        self.garbage = False
        self.requests = 0
        self._nonces: set[str] = set()
        self.connections: set[socket.socket] = set()
        self._open = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpCameraServer:
        self._open.set()
        self._thread.start()
        return self

    def stop(self) -> None:
        """The camera goes away: streams end, new connections are refused."""
        self._open.clear()
        self._server.shutdown()
        self._server.server_close()
        for connection in list(self.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    @property
    def running(self) -> bool:
        return self._open.is_set()

    def picture(self) -> bytes:
        return os.urandom(20_000) if self.garbage else jpeg_frame(time.time() + self.shift)

    def challenge(self) -> str:
        if self.auth == "basic":
            return f'Basic realm="{REALM}"'
        nonce = secrets.token_hex(16)
        self._nonces.add(nonce)
        return f'Digest realm="{REALM}", qop="auth", nonce="{nonce}", opaque="x", algorithm=MD5'

    def authorized(self, method: str, header: str) -> bool:
        if self.auth == "none":
            return True
        if self.auth == "basic":
            import base64

            expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            return header == f"Basic {expected}"
        if not header.startswith("Digest "):
            return False
        fields = {k: v1 or v2 for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', header)}
        if fields.get("nonce") not in self._nonces or fields.get("username") != USER:
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{USER}:{REALM}:{PASSWORD}")
        ha2 = md5(f"{method}:{fields.get('uri')}")
        parts = [ha1, fields["nonce"], fields.get("nc", ""), fields.get("cnonce", ""), "auth", ha2]
        return fields.get("response") == md5(":".join(parts))


def _handler(camera: HttpCameraServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            camera.connections.add(self.connection)

        def finish(self) -> None:
            camera.connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def do_GET(self) -> None:
            if not camera.running:
                self.close_connection = True
                return
            camera.requests += 1
            if not camera.authorized("GET", self.headers.get("Authorization", "")):
                self.send_response(401)
                self.send_header("WWW-Authenticate", camera.challenge())
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/snapshot.jpg":
                self._snapshot()
            elif self.path == "/stream.mjpg":
                self._stream()
            else:
                self.send_error(404)

        def _snapshot(self) -> None:
            body = camera.picture()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Connection", "close")
            self.end_headers()
            with contextlib.suppress(OSError):
                while camera.running:
                    body = camera.picture()
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n\r\n"
                    self.wfile.write(head.encode() + body + b"\r\n")
                    self.wfile.flush()
                    time.sleep(1 / camera.fps)
            self.close_connection = True

    return Handler


@contextlib.contextmanager
def http_camera(
    auth: Auth = "digest", fps: float = 10.0, port: int = 0, shift: float = 0.0
) -> Iterator[HttpCameraServer]:
    server = HttpCameraServer(auth, fps, port, shift).start()
    try:
        yield server
    finally:
        if server.running:
            server.stop()


@contextlib.contextmanager
def silent_camera() -> Iterator[str]:
    """A host:port that accepts connections (the kernel does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")


def rtsp_available() -> bool:
    if not shutil.which(SYSTEM_PYTHON):
        return False
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        "assert all(Gst.ElementFactory.find(e) for e in"
        " ('appsrc', 'videoconvert', 'x264enc', 'rtph264pay'))"
    )
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


class RtspCameraServer:
    """GStreamer's RTSP server in a subprocess: `rtsp://127.0.0.1:PORT/stream`, H.264 pictures
    of the current moment at 10 frames a second, behind Basic authentication."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/stream"

    def start(self) -> RtspCameraServer:
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_SERVER), str(self.port), USER, PASSWORD],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=RTSP_SERVER.parent,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"the RTSP server did not start ({line!r})")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def rtsp_camera() -> Iterator[RtspCameraServer]:
    if not rtsp_available():
        require_service(
            "GStreamer's RTSP server (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
            "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly)"
        )
    server = RtspCameraServer().start()
    try:
        yield server
    finally:
        server.stop()
