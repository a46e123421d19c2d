"""The whole release: guards, lock, verified backup, code, extensions, schema, switch, verify."""

import json
import signal
import sys

from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.core.source import Source
from directus_deploy.flows.release import release as run_release
from directus_deploy.flows.session import open_session

from .base import confirm, task


@task(
    help={
        "tag": "git tag to release (default: the newest tag)",
        "dry-run": "print the plan; change nothing, upload nothing",
        "yes": "answer prompts with their default (for CI); never waits for input",
        "allow-destructive": "let the schema apply drop collections, fields or relations",
        "json": "print the summary as JSON on stdout (progress goes to stderr)",
        "rehearse": "first run the release against a copy of production (scratch database) on the host",
        "no-rehearse": "do not rehearse, whatever DEPLOY_REHEARSE says",
        "batch": "with several hosts: how many switch at a time (default 1)",
        "restart": "go live by restarting the serving Directus in place, even with DEPLOY_STRATEGY=bluegreen "
                   "(for a release whose schema change the old release cannot run on)",
    }
)
def release(c, tag="", dry_run=False, yes=False, allow_destructive=False, json_=False, restart=False,
            rehearse=False, no_rehearse=False, batch=1):
    """Release a tag to production: backup, deploy, migrate, switch, verify, record."""
    # a CI job cancelled with SIGTERM unwinds like Ctrl-C: lock released, production put back
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with open_session(dry_run=dry_run, restart=restart, several_hosts=True) as session:
        if json_:
            session.console.stream = sys.stderr
        ask = None if dry_run else (lambda question: confirm(question, yes))
        try:
            if rehearse and no_rehearse:
                raise Refused("--rehearse and --no-rehearse contradict each other; pass one")
            mode = "always" if rehearse else "never" if no_rehearse else None
            run = run_release(session, tag or None, allow_destructive=allow_destructive, confirm=ask, rehearse_mode=mode,
                              batch=_batch(batch, len(session.config.hosts)))
        except DeployError as failure:
            if json_:
                print(json.dumps({"outcome": "refused" if failure.exit_code == 2 else
                                  "rolled-back" if failure.exit_code == 3 else "failed", "error": str(failure)}))
            raise
        summary = summarize(session, run)
        if json_:
            print(json.dumps(summary, indent=1))
        else:
            session.console.summary("Release " + ("planned (dry run)" if dry_run else "complete"),
                                    [(key.replace("_", " "), _text(value)) for key, value in summary.items()
                                     if key not in ("steps", "outcome")])


def summarize(session, run) -> dict:
    source = Source(session.config.source)
    commits = source.log_between(run.previous_commit, run.tag.commit) if run.previous_commit else []
    return {
        "outcome": "dry-run" if session.dry_run else "ok",
        "tag": run.tag.name,
        "release": run.release_id,
        "from": run.previous,
        "switched_by": session.switch_method,
        "rehearsal": _rehearsal(run.rehearsal),
        "backup": run.backup["id"] if run.backup else None,
        "commits": commits,
        "extensions": run.revision.get("loadable") or run.revision.get("extensions", []),
        "schema_changes": run.plan.changes if run.plan else [],
        "migrations_applied": run.migrated.get("migrations") or run.migrated.get("bootstrap") or [],
        "checks": [f"{c[0]}: {c[1]}" for c in run.checks],
        "warnings": run.warnings,
        "hosts": [str(h) for h in session.config.hosts],
        "round_trips": session.round_trips,
        "steps": {step.name: round(step.seconds, 2) for step in session.console.steps},
    }


def _batch(value, hosts: int) -> int:
    if not str(value).isdigit() or int(value) < 1:
        raise Refused(f"--batch={value} must be a whole number of hosts, at least 1")
    return min(int(value), hosts)


def _rehearsal(outcome: dict) -> str:
    if not outcome:
        return "not run"
    if outcome.get("outcome") == "passed":
        return f"passed on a copy of backup {outcome['backup']} in {outcome['seconds']:.1f}s"
    return f"not run ({outcome.get('why')})"


def _text(value) -> str:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value) if value else "none"
    return str(value if value is not None else "-")
