"""A probe, the way users and API clients meet production: requests every 50 ms through nginx
while something happens, each one recorded (when, what, status, how long, what it said)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

SLOW = 2.0  # seconds: a request slower than this counts as slow


@dataclass
class Sample:
    at: float  # seconds since the probe started
    path: str
    status: int  # 0: no HTTP answer at all (refused, reset, timed out)
    seconds: float
    body: str  # the start of the answer, or the error

    @property
    def failed(self) -> bool:
        return not 200 <= self.status < 300


class Probe:
    """`with Probe(url, ["/server/ping", ...], token) as probe:` requests each path in turn,
    one every `interval` seconds, until the block ends."""

    def __init__(self, url: str, paths: list[str], token: str | None = None, interval: float = 0.05):
        self.url, self.paths, self.token, self.interval = url.rstrip("/"), paths, token, interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = 0.0

    def __enter__(self) -> "Probe":
        self.started = time.monotonic()
        self.started_epoch = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            tick = time.monotonic()
            self.samples.append(self._request(self.paths[turn % len(self.paths)]))
            turn += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - tick)))

    def _request(self, path: str) -> Sample:
        request = urllib.request.Request(self.url + path)
        if self.token and not path.startswith(("/server/ping", "/hello")):
            request.add_header("Authorization", f"Bearer {self.token}")
        began = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status, body = answer.status, answer.read(300).decode(errors="replace")
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read(300).decode(errors="replace")
        except (OSError, ValueError) as error:
            status, body = 0, f"{type(error).__name__}: {error}"
        return Sample(began - self.started, path, status, time.monotonic() - began, body)

    # -- what it saw -------------------------------------------------------------------------

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.failed]

    @property
    def slow(self) -> list[Sample]:
        return [s for s in self.samples if s.seconds > SLOW]

    def messages(self, path: str = "/hello") -> list[str]:
        """What a JSON endpoint answered, in order, repeats folded (e.g. the release serving)."""
        seen: list[str] = []
        for sample in self.samples:
            if sample.path == path and not sample.failed:
                try:
                    message = json.loads(sample.body).get("message", sample.body)
                except ValueError:
                    message = sample.body
                if not seen or seen[-1] != message:
                    seen.append(message)
        return seen

    def summary(self) -> str:
        return f"{len(self.samples)} requests, {len(self.failures)} failed, {len(self.slow)} slower than {SLOW:.0f}s"
