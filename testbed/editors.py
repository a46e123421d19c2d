"""The content team at work: simulated editors writing to production through its REST API
while something happens (a release, a rollback), and a check afterwards that every write an
editor was told succeeded is still there.

Each editor is a thread that, every 100-300 ms (random, seeded), creates an article pointing
at an image, updates an article it created, uploads a file (some over 1 MB), or deletes a
draft it created. Every write is tried once, with a timeout and no retry: what the editor saw
(acknowledged, or an error) is what is recorded. `check` then reads production back.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
import urllib.error
from dataclasses import dataclass, field

from .content import Api, multipart, png

TIMEOUT = 30.0  # seconds an editor waits for one answer before it counts as failed
PAUSE = (0.1, 0.3)  # seconds between an editor's actions
KINDS = {"create": 35, "update": 25, "upload": 25, "delete": 15}  # how often each is chosen
LARGE = 0.3  # share of uploads over 1 MB
ITEM_FIELDS = ("title", "body", "image")


@dataclass
class Write:
    """One write an editor attempted, and what it saw."""

    editor: int
    kind: str  # create, update, upload, delete
    start: float  # epoch seconds
    end: float = 0.0
    acknowledged: bool = False  # 2xx with the expected body
    status: int = 0  # HTTP status; 0: no answer (refused, reset, timed out)
    error: str = ""
    item: int | None = None  # the article written or deleted
    values: dict | None = None  # the article's values after this write (a delete: None)
    file: str | None = None  # the uploaded file's id
    sha256: str | None = None  # of the uploaded bytes
    size: int = 0

    @property
    def seconds(self) -> float:
        return self.end - self.start


class Editor(threading.Thread):
    def __init__(self, number: int, api: Api, seed: int, images: list[str], stop: threading.Event):
        super().__init__(daemon=True, name=f"editor-{number}")
        self.number, self.api, self.stop = number, api, stop
        self.random = random.Random(f"{seed}-{number}")
        self.images = list(images)  # files an article may point at: the seeded ones, then its own uploads
        self.articles: dict[int, dict] = {}  # its own articles, acknowledged and not deleted: id -> values
        self.writes: list[Write] = []

    def run(self) -> None:
        while not self.stop.wait(self.random.uniform(*PAUSE)):
            kind = self.random.choices(list(KINDS), weights=list(KINDS.values()))[0]
            drafts = [i for i, v in self.articles.items() if v["title"].startswith("draft")]
            finished = [i for i in self.articles if i not in drafts]
            if kind == "update" and not finished or kind == "delete" and not drafts:
                kind = "create"
            write = Write(self.number, kind, time.time())
            try:
                if kind == "create":
                    self.create(write)
                elif kind == "update":
                    self.update(write, self.random.choice(finished))
                elif kind == "upload":
                    self.upload(write)
                else:
                    self.delete(write, self.random.choice(drafts))
            except urllib.error.HTTPError as why:
                answer = " ".join(re.sub(r"<[^>]+>", " ", why.read(400).decode(errors="replace")).split())
                write.status, write.error = why.code, f"HTTP {why.code}: {answer[:200]}"
            except (OSError, ValueError, KeyError, TypeError) as why:  # no answer, or not the expected one
                write.error = f"{type(why).__name__}: {why}"
            write.end = time.time()
            self.writes.append(write)

    def _send(self, write: Write, method: str, path: str, body=None, **kwargs):
        answer = self.api.request(method, path, body, timeout=TIMEOUT, retry=False, **kwargs)
        write.status = 200 if answer else 204
        return json.loads(answer)["data"] if answer else None

    def create(self, write: Write) -> None:
        number = len(self.writes) + 1
        draft = self.random.random() < 0.4
        values = {"title": f"{'draft' if draft else 'article'} {self.number}.{number}",
                  "body": f"written by editor {self.number} at {write.start:.3f}",
                  "image": self.random.choice(self.images) if self.images else None}
        write.values = values
        data = self._send(write, "POST", "/items/articles?fields=id,title,body,image", values)
        if {k: data[k] for k in ITEM_FIELDS} != values:
            raise ValueError(f"the answer holds other values: {data}")
        write.item, write.acknowledged = int(data["id"]), True
        self.articles[write.item] = values

    def update(self, write: Write, item: int) -> None:
        change = {"title": f"article {self.number}.{len(self.writes) + 1} (edited)",
                  "body": f"edited by editor {self.number} at {write.start:.3f}"}
        write.item, write.values = item, {**self.articles[item], **change}
        data = self._send(write, "PATCH", f"/items/articles/{item}?fields=id,title,body,image", change)
        if {k: data[k] for k in ITEM_FIELDS} != write.values:
            raise ValueError(f"the answer holds other values: {data}")
        write.acknowledged = True
        self.articles[item] = write.values

    def upload(self, write: Write) -> None:
        if self.random.random() < LARGE:
            content = self.random.randbytes(self.random.randint(1_100_000, 2_500_000))
            name, mime = f"scan-{self.number}-{len(self.writes)}.bin", "application/octet-stream"
        else:
            side = self.random.randint(32, 160)
            content = png(side, side, seed=self.random.getrandbits(32))
            name, mime = f"photo-{self.number}-{len(self.writes)}.png", "image/png"
        write.sha256, write.size = hashlib.sha256(content).hexdigest(), len(content)
        raw, content_type = multipart({"title": name}, name, content, mime)
        data = self._send(write, "POST", "/files", raw=raw, content_type=content_type)
        if int(data["filesize"]) != len(content):
            raise ValueError(f"the answer says {data['filesize']} bytes, {len(content)} were sent")
        write.file, write.acknowledged = data["id"], True
        self.images.append(write.file)

    def delete(self, write: Write, item: int) -> None:
        write.item = item
        self._send(write, "DELETE", f"/items/articles/{item}")
        if write.status != 204:
            raise ValueError(f"a delete answered {write.status}, not 204")
        write.acknowledged = True
        del self.articles[item]


class Editors:
    """`with Editors(api, 4) as editors:` keeps `count` editors writing until the block ends;
    `editors.writes` then holds every write, in the order they started."""

    def __init__(self, api: Api, count: int = 4, seed: int = 20):
        self.api, self.count, self.seed = api, count, seed
        self._stop = threading.Event()
        self._editors: list[Editor] = []
        self.writes: list[Write] = []

    def __enter__(self) -> "Editors":
        images = [f["id"] for f in self.api.get("/files?limit=5&fields=id&sort=id")["data"]]
        self._editors = [Editor(n, self.api, self.seed, images, self._stop) for n in range(1, self.count + 1)]
        for editor in self._editors:
            editor.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for editor in self._editors:
            editor.join()
        self.writes = sorted((w for e in self._editors for w in e.writes), key=lambda w: w.start)


@dataclass
class Report:
    attempted: int = 0
    acknowledged: int = 0
    failed: int = 0
    lost: list = field(default_factory=list)  # acknowledged writes missing or different (must stay empty)
    set_aside: list = field(default_factory=list)  # acknowledged after `set_aside_after`, missing by design
    rows_without_bytes: list = field(default_factory=list)  # directus_files rows whose bytes cannot be read
    longest_wait: float = 0.0  # seconds: the longest any write took, failed ones until they errored
    p50_ms: float = 0.0  # of acknowledged writes
    p99_ms: float = 0.0
    failures: list = field(default_factory=list)  # the failed writes

    @property
    def failure_window(self) -> tuple[float, float] | None:
        """(first start, last end) of the failed writes, epoch seconds."""
        if not self.failures:
            return None
        return min(w.start for w in self.failures), max(w.end for w in self.failures)

    def summary(self) -> str:
        return (f"{self.attempted} writes, {self.acknowledged} acknowledged, {self.failed} failed, "
                f"{len(self.lost)} lost, {len(self.set_aside)} set aside, {len(self.rows_without_bytes)} file rows "
                f"without bytes, longest wait {self.longest_wait:.2f}s")


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def check(api: Api, writes: list[Write], set_aside_after: float | None = None) -> Report:
    """Production read back against every acknowledged write. A write that is missing or
    different is lost, unless it was acknowledged after `set_aside_after` (epoch seconds: when
    the backup a database rollback restored was taken), then it is set aside by design."""
    acknowledged = [w for w in writes if w.acknowledged]
    report = Report(attempted=len(writes), acknowledged=len(acknowledged), failed=len(writes) - len(acknowledged),
                    failures=[w for w in writes if not w.acknowledged])
    report.longest_wait = max((w.seconds for w in writes), default=0.0)
    report.p50_ms = percentile([w.seconds * 1000 for w in acknowledged], 0.50)
    report.p99_ms = percentile([w.seconds * 1000 for w in acknowledged], 0.99)
    missing = missing_items(api, writes) + missing_files(api, acknowledged)
    for write, why in missing:
        aside = set_aside_after is not None and write.end > set_aside_after
        (report.set_aside if aside else report.lost).append((write, why))
    report.rows_without_bytes = rows_without_bytes(api)
    return report


def missing_items(api: Api, writes: list[Write]) -> list[tuple[Write, str]]:
    """The acknowledged article writes production does not reflect. An article's state must be
    the one its last acknowledged write left, or one a later failed write may have left (the
    editor saw an error; the write may still have happened)."""
    now = {int(a["id"]): {k: a[k] for k in ITEM_FIELDS}
           for a in api.get("/items/articles?limit=-1&fields=id,title,body,image")["data"]}
    lives: dict[int, list[list[Write]]] = {}  # article id -> its lives: a database restore can hand an id out again
    for write in sorted(writes, key=lambda w: w.start):
        if write.item is None:
            continue
        if write.kind == "create" or write.item not in lives:
            lives.setdefault(write.item, []).append([])
        lives[write.item][-1].append(write)
    missing = []
    for item, histories in lives.items():
        for number, history in enumerate(histories):
            done = [w for w in history if w.acknowledged]
            if not done:
                continue
            last = max(history.index(w) for w in done)
            possible = [done[-1].values] + [w.values for w in history[last + 1:]]
            # an article whose id a later create got again was gone by then
            state = None if number < len(histories) - 1 else now.get(item)
            if state in possible:
                continue
            # the writes after the last one production still reflects are the missing ones
            reflected = [i for i, w in enumerate(done) if w.values == state]
            for write in done[reflected[-1] + 1 if reflected else 0:]:
                missing.append((write, f"article {item} is {'gone' if state is None else state}, "
                                       f"{write.kind} acknowledged {write.values}"))
    return missing


def missing_files(api: Api, acknowledged: list[Write]) -> list[tuple[Write, str]]:
    """Acknowledged uploads whose bytes are not served back identical."""
    missing = []
    for write in acknowledged:
        if write.kind != "upload":
            continue
        try:
            served = hashlib.sha256(api.request("GET", f"/assets/{write.file}")).hexdigest()
        except urllib.error.HTTPError as why:  # 403: no such file row (Directus does not say 404)
            missing.append((write, f"file {write.file}: HTTP {why.code}"))
            continue
        if served != write.sha256:
            missing.append((write, f"file {write.file}: served bytes differ from the upload"))
    return missing


def rows_without_bytes(api: Api) -> list[str]:
    """directus_files rows whose bytes are not served in full: a file row without its file."""
    problems = []
    for row in api.get("/files?limit=-1&fields=id,filesize")["data"]:
        try:
            size = len(api.request("GET", f"/assets/{row['id']}"))
        except urllib.error.HTTPError as why:
            problems.append(f"{row['id']}: HTTP {why.code}")
            continue
        if size != int(row["filesize"] or 0):
            problems.append(f"{row['id']}: {size} bytes served, the row says {row['filesize']}")
    return problems
