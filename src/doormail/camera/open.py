"""The source that `camera.*` describes, opened: an HTTP snapshot or MJPEG camera, or an RTSP
stream. Each is imported only when configured (PyAV for RTSP is large)."""

from __future__ import annotations

from doormail.camera.source import Source
from doormail.settings import Camera


def source_for(camera: Camera, rate: float) -> Source | None:
    """The source `camera.*` describes, polling or thinning to about `rate` frames a second;
    None for `camera.source = none`."""
    if camera.source in ("http", "mjpeg"):
        from doormail.camera.http import HttpCamera

        return HttpCamera(camera.url, camera.username, camera.password, 1.0 / rate)
    if camera.source == "rtsp":
        from doormail.camera.rtsp import RtspCamera

        return RtspCamera(camera.url, camera.username, camera.password, 1.0 / rate)
    return None
