"""Production content, seeded and read back through Directus's REST API.

`seed` creates what a real production holds: a collection whose items reference uploaded
images. `read_content` reads back everything a user could lose (items, and each file's bytes
as a sha256) so two moments of a production can be compared exactly.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import time
import urllib.error
import urllib.request
import uuid
import zlib
from dataclasses import dataclass

IMAGE_COUNT = 24


class Api:
    """A tiny Directus REST client with an admin static token."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.token = token

    def request(self, method: str, path: str, body=None, *, raw: bytes | None = None,
                content_type: str = "application/json", auth: bool = True, timeout: float = 30,
                retry: bool = True):
        """`retry=False`: one attempt, as an editor's write gets (a retried POST would hide a
        failure the editor saw, or write twice)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if auth:
            request.add_header("Authorization", f"Bearer {self.token}")
        attempts = 4 if retry else 1
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    return response.read()
            except urllib.error.HTTPError as why:
                if why.code != 503 or attempt == attempts - 1:  # 503: busy for a moment, worth another try
                    raise
                time.sleep(1 + attempt)

    def json(self, method: str, path: str, body=None, **kwargs):
        payload = self.request(method, path, body, **kwargs)
        return json.loads(payload) if payload else None

    def get(self, path: str, **kwargs):
        return self.json("GET", path, **kwargs)

    def upload(self, filename: str, content: bytes, title: str, mime: str = "image/png", storage: str | None = None) -> str:
        """`storage`: the location to upload into (default: Directus's first)."""
        fields = {"storage": storage, "title": title} if storage else {"title": title}
        raw, content_type = multipart(fields, filename, content, mime)
        return json.loads(self.request("POST", "/files", raw=raw, content_type=content_type))["data"]["id"]

    def replace_file(self, file_id: str, filename: str, content: bytes, mime: str = "image/png") -> None:
        raw, content_type = multipart({}, filename, content, mime)
        self.request("PATCH", f"/files/{file_id}", raw=raw, content_type=content_type)

    def healthy(self) -> bool:
        try:
            ping = self.request("GET", "/server/ping", auth=False, timeout=3)
            health = self.json("GET", "/server/health", timeout=5)
            return ping.strip() == b"pong" and health.get("status") in ("ok", "warn")
        except (urllib.error.URLError, OSError, ValueError):
            return False


def multipart(fields: dict, filename: str, content: bytes, mime: str) -> tuple[bytes, str]:
    """A multipart/form-data body for Directus's /files: `fields` first (Directus reads them
    only before the file), then the file; returns (body, its Content-Type)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
              f"Content-Type: {mime}\r\n\r\n".encode(), content, f"\r\n--{boundary}--\r\n".encode()]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def png(width: int, height: int, seed: int) -> bytes:
    """A real PNG of random-coloured pixels (no image library needed)."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + bytes(rng.getrandbits(8) for _ in range(width * 3)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")


ARTICLES_COLLECTION = {
    "collection": "articles",
    "meta": {"icon": "article", "note": "Seeded articles"},
    "schema": {},
    "fields": [
        {"field": "id", "type": "integer", "meta": {"hidden": True, "interface": "input", "readonly": True},
         "schema": {"is_primary_key": True, "has_auto_increment": True}},
        {"field": "title", "type": "string", "meta": {"interface": "input", "required": True},
         "schema": {"is_nullable": False}},
        {"field": "body", "type": "text", "meta": {"interface": "input-multiline"}, "schema": {}},
        {"field": "image", "type": "uuid", "meta": {"interface": "file-image", "special": ["file"]}, "schema": {}},
    ],
}
ARTICLES_IMAGE_RELATION = {
    "collection": "articles", "field": "image", "related_collection": "directus_files",
    "schema": {"on_delete": "SET NULL"},
}


@dataclass
class Seeded:
    files: dict  # file id -> sha256 of the uploaded bytes
    articles: int


def seed(api: Api, images: int = IMAGE_COUNT, schema: bool = True) -> Seeded:
    """Articles with their images; `schema=False` when the collection exists already (made
    from the project's snapshot)."""
    if schema:
        api.json("POST", "/collections", ARTICLES_COLLECTION)
        api.json("POST", "/relations", ARTICLES_IMAGE_RELATION)
    files = {}
    items = []
    for number in range(1, images + 1):
        content = png(24 + number * 3, 16 + number * 2, seed=number)
        file_id = api.upload(f"photo-{number:02d}.png", content, title=f"Photo {number}")
        files[file_id] = hashlib.sha256(content).hexdigest()
        items.append({"title": f"Article {number}", "body": f"Body of article {number}.", "image": file_id})
    api.json("POST", "/items/articles", items)
    return Seeded(files=files, articles=len(items))


def read_content(api: Api) -> dict:
    """Everything a user could lose, in a comparable form: items, and every file's bytes."""
    articles = api.get("/items/articles?limit=-1&sort=id&fields=id,title,body,image")["data"]
    files = api.get("/files?limit=-1&sort=id&fields=id,filename_download,filesize")["data"]
    hashes = {}
    for entry in files:
        try:
            hashes[entry["id"]] = hashlib.sha256(api.request("GET", f"/assets/{entry['id']}")).hexdigest()
        except urllib.error.HTTPError as why:  # the file's bytes are gone (Directus answers 403)
            hashes[entry["id"]] = f"unreadable: HTTP {why.code}"
    return {"articles": articles, "files": hashes}
