"""Offline stand-ins for the Hugging Face Hub: a pre-populated cache, a loopback file server and a
made-up open_clip pretrained tag."""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def populate_cache(cache_dir: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Lay out `files` as huggingface_hub's cache does (refs/main + snapshots/<commit>/...)."""
    root = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    snap = root / "snapshots" / COMMIT
    snap.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        (snap / name).write_bytes(Path(src).read_bytes())


def fake_open_clip_tag(monkeypatch, backbone: str, tag: str, hf_hub: str) -> None:
    """Make open_clip's public `get_pretrained_cfg(backbone, tag)` name weights at `hf_hub`
    (``org/name/`` for its default file); every other lookup is open_clip's own. The emoclip code
    reads pretrained configs only through that function, so no private table is touched."""
    from open_clip import pretrained as oc_pretrained

    original = oc_pretrained.get_pretrained_cfg

    def get_pretrained_cfg(model: str, pretrained_tag: str):
        if (model, pretrained_tag) == (backbone, tag):
            return {"url": "", "hf_hub": hf_hub}
        return original(model, pretrained_tag)

    monkeypatch.setattr(oc_pretrained, "get_pretrained_cfg", get_pretrained_cfg)


@contextmanager
def fake_hub(files: dict[str, dict[str, Path]]):
    """Serve ``/{repo}/resolve/{rev}/{file}`` on 127.0.0.1; yields (endpoint URL, request log)."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _lookup(self):
            requests.append(f"{self.command} {self.path}")
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, name = "/".join(parts[:2]), "/".join(parts[4:])
                path = files.get(repo, {}).get(name)
                if path is not None:
                    return Path(path).read_bytes()
            return None

        def _headers(self, body: bytes | None) -> None:
            if body is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def do_HEAD(self):  # noqa: N802
            self._headers(self._lookup())

        def do_GET(self):  # noqa: N802
            body = self._lookup()
            self._headers(body)
            if body is not None:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
