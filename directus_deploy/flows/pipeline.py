"""Flows as data: a declared list of steps, and one runner for all of them.

    RELEASE = Pipeline([
        Step("check the host", check_host, plan="tools, disk, production healthy"),
        Step("deploy the code", deploy_code, undo=discard_code, plan="upload and unpack the tag"),
        Step("switch", switch_host, scope="rolling", plan="a host at a time, each through its gate"),
    ], hosts=lambda run: run.fleet)
    results = RELEASE.run(run, say=console.say)

A step's scope says where it runs:

    primary   `run(ctx)`, once
    each      `run(ctx, host)` on every host at once (threads); a failure is raised once every
              host is done, the first host's first, each failed host reported by name
    rolling   `run(ctx, host)` a batch of hosts at a time (`batch(ctx)`, the hosts of a batch at
              once), stopping at the first batch that fails

Steps marked `beside=True` run beside the unmarked step before them: that step here, they one
after another in a thread, started together; the step after them waits for both. For work that
shares nothing, such as the code's upload while the database is dumped. When a step fails, the
other side is let finish (a failed beside step stops the ones after it), then the completed
steps are undone as usual and the first failure in step order is raised.
`run(..., parallel=False)` runs such steps one after the other (a dry run's output stays in order).

The runner runs the steps in order and times each. When one fails (Ctrl-C included) it calls
`undo(ctx)` of every step that completed, the newest first, says what it undid, and raises the
original error: an undo that fails is reported, never raised in its place. With `dry_run` it
prints the plan (each step's one line) and runs nothing. What a step leaves half done when it
fails itself is that step's own business; `undo` is for what a completed step left behind.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

SCOPES = ("primary", "each", "rolling")
PLAN_HEADERS = ["", "step", "scope", "plan"]
SUMMARY_HEADERS = ["outcome", "step", "scope", "time"]


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable  # run(ctx) for "primary"; run(ctx, host) for "each" and "rolling"
    scope: str = "primary"
    undo: Callable | None = None  # undo(ctx): put back what the completed step left, when a later one fails
    plan: str = ""  # one line: what the step does (--dry-run, the summary)
    hosts: Callable | None = None  # hosts(ctx) for "each"/"rolling", instead of the pipeline's
    beside: bool = False  # runs at the same time as the unmarked step before it (see above)

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"step {self.name!r}: scope {self.scope!r} is not one of {', '.join(SCOPES)}")


@dataclass
class StepResult:
    name: str
    scope: str
    plan: str
    outcome: str = "not run"  # ok | failed | interrupted | planned | not run
    seconds: float = 0.0
    failed_on: dict = field(default_factory=dict)  # host -> its error ("each" and "rolling")
    undo: str = ""  # undone | undo failed: <why>


class Pipeline:
    def __init__(self, steps: list[Step], *, hosts: Callable = lambda ctx: [], batch: Callable = lambda ctx: 1):
        names = [step.name for step in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"two steps share a name: {names}")
        if steps and steps[0].beside:
            raise ValueError(f"step {steps[0].name!r} runs beside the step before it, and it is the first")
        self.steps, self.hosts, self.batch = list(steps), hosts, batch

    def plan(self) -> list[list[str]]:
        """The rows of the plan: number, step, scope, what it does."""
        return [[f"{number}.", step.name, step.scope, step.plan] for number, step in enumerate(self.steps, 1)]

    def run(self, ctx, *, say: Callable | None = None, dry_run: bool = False,
            report: list | None = None, parallel: bool = True) -> list[StepResult]:
        """Run every step on `ctx`; the StepResults, also filled into `report` as the run goes
        (there when the run fails)."""
        say = say or (lambda text: None)
        results = report if report is not None else []
        results[:] = [StepResult(step.name, step.scope, step.plan) for step in self.steps]
        if dry_run:
            for number, name, scope, plan in self.plan():
                say(f"{number} {name} ({scope}): {plan}")
            for result in results:
                result.outcome = "planned"
            return results
        done = []
        for group in self._groups(results, parallel):
            failure = self._run_group(group, ctx, say)
            done += [(step, result) for step, result in group if result.outcome == "ok"]
            if failure is not None:
                self._undo(done, ctx, say)
                raise failure
        return results

    def _groups(self, results: list, parallel: bool) -> list[list]:
        """The steps as (step, result) groups run at the same time: a step and those beside it."""
        groups = []
        for step, result in zip(self.steps, results):
            if step.beside and parallel:
                groups[-1].append((step, result))
            else:
                groups.append([(step, result)])
        return groups

    def _run_group(self, group: list, ctx, say) -> BaseException | None:
        """Run the group's steps: the first here, the others one after another in a thread,
        until one fails; both sides are let end. The first failure in step order, or None."""
        def timed(step: Step, result: StepResult) -> BaseException | None:
            started = time.monotonic()
            try:
                self._run_step(step, ctx, result, say)
            except BaseException as failure:  # noqa: BLE001 - handed to the caller, who raises it
                result.outcome = "interrupted" if isinstance(failure, KeyboardInterrupt) else "failed"
                return failure
            finally:
                result.seconds = time.monotonic() - started
            result.outcome = "ok"
            return None

        def in_turn(steps: list) -> BaseException | None:
            return next((failure for failure in (timed(*pair) for pair in steps) if failure is not None), None)

        (first, first_result), others = group[0], group[1:]
        if not others:
            return timed(first, first_result)
        with ThreadPoolExecutor(max_workers=1) as pool:
            beside = pool.submit(in_turn, others)
            failure = timed(first, first_result)
            while True:  # Ctrl-C here still waits: a thread cannot be stopped halfway
                try:
                    failed_beside = beside.result()
                except KeyboardInterrupt as interrupt:
                    failure = failure or interrupt
                    continue
                return failure or failed_beside

    def _run_step(self, step: Step, ctx, result: StepResult, say) -> None:
        if step.scope == "primary":
            step.run(ctx)
            return
        hosts = list((step.hosts or self.hosts)(ctx))
        size = len(hosts) if step.scope == "each" else max(1, int(self.batch(ctx)))
        for start in range(0, len(hosts), max(1, size)):
            self._fan_out(step, ctx, hosts[start:start + size], result, say)

    def _fan_out(self, step: Step, ctx, hosts: list, result: StepResult, say) -> None:
        failed = {}

        def one(host):
            try:
                return step.run(ctx, host)
            except BaseException as failure:
                failed[host_name(host)] = failure
                raise

        try:
            on_each_host(hosts, one)
        finally:
            for name in (host_name(host) for host in hosts):
                if name in failed:
                    result.failed_on[name] = str(failed[name])
                    say(f"    {step.name}: failed on {name}: {failed[name]}")

    @staticmethod
    def _undo(done: list, ctx, say) -> None:
        for step, result in reversed(done):
            if step.undo is None:
                continue
            try:
                step.undo(ctx)
            except BaseException as failure:  # noqa: BLE001 - the original error matters more: say it, go on
                result.undo = f"undo failed: {failure}"
                say(f"    could not undo {step.name}: {failure}")
            else:
                result.undo = "undone"
                say(f"    undone: {step.name}")


def summary_rows(results: list[StepResult]) -> list[list[str]]:
    """The rows of the summary table (SUMMARY_HEADERS): outcome, step, scope, time."""
    rows = []
    for result in results:
        outcome = result.outcome + (f", {result.undo}" if result.undo else "")
        if result.failed_on:
            outcome += f" on {', '.join(result.failed_on)}"
        rows.append([outcome, result.name, result.scope, f"{result.seconds:.1f}s"])
    return rows


def host_name(host) -> str:
    return str(getattr(host, "name", host))


def on_each_host(views: list, call) -> list:
    """`call(view)` for every host of `views`, all at once when there are several (each host's
    work is its own); the results in host order. A failure is raised once every host is done,
    the first host's first."""
    if len(views) <= 1:
        return [call(view) for view in views]
    with ThreadPoolExecutor(max_workers=len(views)) as pool:
        futures = [pool.submit(call, view) for view in views]
    return [future.result() for future in futures]
