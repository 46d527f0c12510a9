"""An RTSP camera for the tests, run with Debian's python3: GStreamer's RTSP server streaming
H.264 pictures of the current moment (see pattern.py) at rtsp://127.0.0.1:PORT/stream, behind
Basic authentication. Usage: rtsp_server.py PORT USER PASSWORD; prints "ready" once listening."""

from __future__ import annotations

import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402
from pattern import HEIGHT, WIDTH, gray_frame  # type: ignore[import-not-found]  # noqa: E402

FPS = 10
PIPELINE = (
    "( appsrc name=camera is-live=true format=time do-timestamp=true "
    f"caps=video/x-raw,format=GRAY8,width={WIDTH},height={HEIGHT},framerate={FPS}/1 "
    "! videoconvert ! video/x-raw,format=I420 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=5 bitrate=800 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)


def on_configure(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
    source = media.get_element().get_by_name_recurse_up("camera")

    def push() -> bool:
        buffer = Gst.Buffer.new_wrapped(gray_frame(time.time()))
        return bool(source.emit("push-buffer", buffer) == Gst.FlowReturn.OK)

    GLib.timeout_add(1000 // FPS, push)


def main() -> None:
    port, user, password = sys.argv[1], sys.argv[2], sys.argv[3]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)

    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "viewer")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role_from_structure(
        Gst.Structure.new_from_string(
            "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
    )
    factory.set_permissions(permissions)
    factory.connect("media-configure", on_configure)
    server.get_mount_points().add_factory("/stream", factory)

    if server.attach(None) == 0:
        print("failed", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
