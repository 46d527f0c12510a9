"""An MJPEG camera on loopback for the benchmarks: `/stream.mjpg` sends the given 1280x720
pictures in turn, `fps` a second, as multipart/x-mixed-replace, the way door cameras stream."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOUNDARY = "doormailbench"


class MjpegCamera:
    """Started with `start()`, stopped with `stop()`; `url` is the stream's address."""

    def __init__(self, pictures: list[bytes], fps: float = 10.0) -> None:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    camera.stream(self.wfile.write)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._pictures = pictures
        self._interval = 1.0 / fps
        self._stopped = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/stream.mjpg"

    def stream(self, send: Callable[[bytes], object]) -> None:
        """Send the pictures until the camera stops (or the client goes away)."""
        for picture in itertools.cycle(self._pictures):
            if self._stopped.is_set():
                return
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(picture)}\r\n\r\n"
            send(head.encode() + picture + b"\r\n")
            time.sleep(self._interval)

    def start(self) -> MjpegCamera:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
