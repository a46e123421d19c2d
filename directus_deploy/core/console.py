"""What a person sees: each step's name, outcome and duration, then a summary."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class StepRecord:
    name: str
    outcome: str = "running"  # ok | failed | skipped | running
    seconds: float = 0.0
    detail: str = ""
    thread: int = 0  # the thread running it: steps of other threads may print in between


@dataclass
class Console:
    """Prints steps as they run; keeps their records for the summary and the deploy log."""

    scrub: Callable[[str], str] = lambda text: text
    stream: object = field(default_factory=lambda: sys.stdout)
    steps: list = field(default_factory=list)
    prefix: str = ""  # "[host] " when several hosts are deployed to at once

    def say(self, text: str = "") -> None:
        lines = self.scrub(text).split("\n")
        print("\n".join(self.prefix + line if line or self.prefix else line for line in lines), file=self.stream, flush=True)

    def for_host(self, prefix: str) -> "Console":
        """The same console (same stream, same step records) with every line prefixed."""
        return Console(scrub=self.scrub, stream=self.stream, steps=self.steps, prefix=prefix)

    @contextmanager
    def step(self, name: str):
        """`with console.step("backup database") as step:`; set `step.detail` to say more."""
        record = StepRecord(self.prefix + name, thread=threading.get_ident())
        self.steps.append(record)
        self.say(f"==> {name}")
        started = time.monotonic()
        try:
            yield record
        except BaseException as why:
            record.seconds = time.monotonic() - started
            record.outcome = "interrupted" if isinstance(why, KeyboardInterrupt) else "failed"
            self.say(f"    {record.outcome.upper()}: {name} ({record.seconds:.1f}s)")
            raise
        record.seconds = time.monotonic() - started
        if record.outcome == "running":
            record.outcome = "ok"
        detail = f": {record.detail}" if record.detail else ""
        # with another thread's step under way, the line its "==>" began may be far above
        named = f" {name}" if self._others_running(record) else ""
        self.say(f"    {record.outcome}{named}{detail} ({record.seconds:.1f}s)")

    def _others_running(self, record: StepRecord) -> bool:
        return any(other.outcome == "running" and other.thread != record.thread for other in list(self.steps))

    def table(self, headers: list[str], rows: list[list[object]]) -> None:
        cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for number, row in enumerate(cells):
            self.say("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
            if number == 0:
                self.say("  ".join("-" * width for width in widths))

    def summary(self, title: str, facts: list[tuple[str, str]] = ()) -> None:
        total = sum(step.seconds for step in self.steps)
        self.say("")
        self.say(f"{title} ({total:.1f}s)")
        width = max((len(step.name) for step in self.steps), default=0)
        for step in self.steps:
            self.say(f"  {step.outcome:<11} {step.name:<{width}}  {step.seconds:6.1f}s")
        for label, value in facts:
            self.say(f"  {label}: {value}")


class Progress:
    """One line, rewritten in place on a terminal; a line per 10 % otherwise (CI logs)."""

    def __init__(self, total: int, say):
        self.total, self.done, self.say = max(total, 1), 0, say
        self.started = time.monotonic()
        self.tty = sys.stdout.isatty()
        self.last_tenth = -1

    def add(self, count: int) -> None:
        self.done += count
        fraction = self.done / self.total
        rate = self.done / max(time.monotonic() - self.started, 1e-6) / (1 << 20)
        text = f"    {fraction:6.1%}  {self.done / (1 << 20):8.1f} of {self.total / (1 << 20):.1f} MiB  {rate:6.1f} MiB/s"
        if self.tty:
            print("\r" + text, end="", flush=True)
        elif int(fraction * 10) > self.last_tenth:
            self.last_tenth = int(fraction * 10)
            self.say(text)

    def end(self) -> None:
        if self.tty:
            print(flush=True)
