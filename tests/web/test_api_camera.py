"""`/api/camera/snapshot` and `/api/camera/status`: the N/A picture without a camera, precise
errors for bad parameters, and authentication."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from PIL import Image


def test_without_a_camera_the_snapshot_is_the_na_picture_at_the_asked_size(api: TestClient) -> None:
    reply = api.get("/api/camera/snapshot", params={"width": 320, "height": 240, "time": -5})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "image/jpeg"
    assert reply.headers["x-doormail-camera"] == "none"
    assert Image.open(io.BytesIO(reply.content)).size == (320, 240)


def test_snapshot_defaults_to_640x480_now(api: TestClient) -> None:
    reply = api.get("/api/camera/snapshot")
    assert reply.status_code == 200
    assert Image.open(io.BytesIO(reply.content)).size == (640, 480)


def test_a_time_in_the_future_is_refused_naming_the_field(api: TestClient) -> None:
    reply = api.get("/api/camera/snapshot", params={"time": 3})
    assert reply.status_code == 422
    assert reply.json()["error"]["field"] == "time"


def test_a_time_before_the_buffer_is_refused_naming_the_field(api: TestClient) -> None:
    reply = api.get("/api/camera/snapshot", params={"time": -31})
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["field"] == "time"
    assert "camera.buffer_seconds" in error["message"]


def test_a_size_out_of_range_is_refused_naming_the_field(api: TestClient) -> None:
    for params, field in (
        ({"width": 4000}, "width"),
        ({"height": 0}, "height"),
        ({"width": "x"}, "width"),
    ):
        reply = api.get("/api/camera/snapshot", params=params)
        assert reply.status_code == 422
        assert reply.json()["error"]["field"] == field


def test_camera_status_says_there_is_no_camera(api: TestClient) -> None:
    reply = api.get("/api/camera/status")
    assert reply.status_code == 200
    assert reply.json() == {
        "source": "none",
        "where": "",
        "state": "off",
        "error": None,
        "last_frame_at": None,
        "frames": 0,
        "buffer_bytes": 0,
    }


def test_camera_routes_need_authentication(anonymous: TestClient) -> None:
    assert anonymous.get("/api/camera/snapshot").status_code == 401
    assert anonymous.get("/api/camera/status").status_code == 401
