import hashlib
import http.server
import socket
import threading

import pytest

from waldo_pl.data.download import COMPLETE_MARKER, ManifestRow, download, ensure_downloaded, read_manifest
from waldo_pl.errors import UserError


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `files` from memory, honouring `Range: bytes=N-`, and records what it was asked."""

    files: dict[str, bytes] = {}
    requests: list[tuple[str, str | None]] = []

    def do_GET(self):
        path = self.path.lstrip("/")
        self.requests.append((path, self.headers.get("Range")))
        if path not in self.files:
            self.send_error(404)
            return
        body, status = self.files[path], 200
        if rng := self.headers.get("Range"):
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            body, status = body[start:], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    files = {"images/1.jpg": bytes(range(256)) * 400, "annotations/annotations.csv": b"filename,width\n1.jpg,3\n"}
    handler = type("Handler", (RangeHandler,), {"files": dict(files), "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    manifest = [ManifestRow(p, len(b), hashlib.sha256(b).hexdigest()) for p, b in files.items()]
    yield f"http://127.0.0.1:{httpd.server_port}", manifest, handler, files
    httpd.shutdown()


def test_download_fetches_and_checks_every_file(server, tmp_path):
    url, manifest, handler, files = server
    root = ensure_downloaded(tmp_path / "data", base_url=url, manifest=manifest, progress=False)
    for path, body in files.items():
        assert (root / path).read_bytes() == body
    assert (root / COMPLETE_MARKER).is_file() and not list(root.rglob("*.part"))
    # A second call finds the finished download and asks for nothing.
    handler.requests.clear()
    ensure_downloaded(root, base_url=url, manifest=manifest, progress=False)
    assert handler.requests == []


def test_download_resumes_a_partial_file(server, tmp_path):
    url, manifest, handler, files = server
    body = files["images/1.jpg"]
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "1.jpg.part").write_bytes(body[:1000])
    download(tmp_path, base_url=url, manifest=manifest, progress=False)
    assert ("images/1.jpg", "bytes=1000-") in handler.requests
    assert (tmp_path / "images" / "1.jpg").read_bytes() == body


def test_a_corrupted_file_is_rejected_and_the_rest_kept(server, tmp_path):
    url, manifest, handler, files = server
    handler.files["images/1.jpg"] = b"x" + files["images/1.jpg"][1:]
    with pytest.raises(UserError, match=r"1 download\(s\) failed their checksum \(images/1.jpg\)"):
        download(tmp_path, base_url=url, manifest=manifest, progress=False)
    assert not (tmp_path / "images" / "1.jpg").exists() and not (tmp_path / "images" / "1.jpg.part").exists()
    assert (tmp_path / "annotations" / "annotations.csv").read_bytes() == files["annotations/annotations.csv"]
    assert not (tmp_path / COMPLETE_MARKER).exists()


def test_offline_fails_in_one_line_naming_data_root(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manifest = [ManifestRow("images/1.jpg", 3, "0" * 64)]
    with pytest.raises(UserError) as err:
        download(tmp_path, base_url=f"http://127.0.0.1:{port}", manifest=manifest, progress=False, timeout=5)
    assert "data.root" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "images" / "1.jpg").exists()


def test_the_shipped_manifest_pins_every_public_file():
    rows = read_manifest()
    assert len(rows) == 36 and rows[-1].path == "annotations/annotations.csv"
    assert all(len(r.sha256) == 64 and r.bytes > 0 for r in rows)
