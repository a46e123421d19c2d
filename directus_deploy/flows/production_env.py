"""The production `.env`, deployed from a template kept in the project: `fab config.diff` and
`fab config.push`.

The template (`config/production.env` at a tag) holds the settings, never the secrets:

    CORS_ORIGIN=https://www.example.com     a value: set on the host
    DB_PASSWORD=@host                       keep whatever the host has (the secret lives there)
    EMAIL_SMTP_PASSWORD=${SMTP_PASSWORD}    from this machine's environment (a CI secret)

The host's file is edited, not replaced: changed keys keep their line, new ones are appended,
and a key only the host has stays (and is said so). SECRET and the DB_* settings are refused
unless a flag allows them (a new SECRET logs everybody out; a wrong DB_* points production at
another database). Values of secret keys, and the passwords inside URLs whatever their key,
are masked in everything printed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from directus_deploy.core import dotenv, url_secrets
from directus_deploy.core.errors import DeployError, Refused, RolledBack
from directus_deploy.core.source import Source
from directus_deploy.flows import steps
from directus_deploy.flows.backup import take_backup
from directus_deploy.flows.pipeline import Pipeline, Step
from directus_deploy.flows.switch import current_release
from directus_deploy.state.production import SECRET_ENV_KEYS
from directus_deploy.state.settings import dotenv_line

TEMPLATE = "config/production.env"
KEEP = "@host"
_FROM_ENVIRONMENT = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass
class Change:
    key: str
    kind: str  # add | change | host-only
    old: str | None
    new: str | None


def is_secret(key: str) -> bool:
    return key in SECRET_ENV_KEYS or key.endswith(("_PASSWORD", "_SECRET", "_TOKEN", "_KEY"))


def shown(key: str, value: str | None) -> str:
    if value is None:
        return "(unset)"
    return "***" if is_secret(key) and value else repr(url_secrets.masked(value))


def parse(text: str) -> dict[str, str]:
    # as Directus reads a .env: no expansion (${NAME} is the template's own syntax)
    return dotenv.parse(text)


def read_template(source, tag, file: str | None) -> tuple[str, str]:
    """(text, where it came from): a local file, or config/production.env at the tag."""
    if file:
        path = Path(file)
        if not path.is_file():
            raise Refused(f"--file={file}: no such file")
        return path.read_text(), str(path)
    content = source.read(tag, TEMPLATE)
    if content is None:
        raise Refused(f"tag {tag.name} has no {TEMPLATE}: add the production settings there (secrets as {KEEP} "
                      "or ${NAME}), or pass --file")
    return content.decode(), f"{TEMPLATE} at {tag.name}"


def resolve(template: dict[str, str], host: dict[str, str], environ=os.environ) -> dict[str, str]:
    """The values the template asks for, with @host and ${NAME} worked out."""
    wanted = {}
    for key, value in template.items():
        if value == KEEP:
            if key not in host:
                raise Refused(f"{key}={KEEP} in the template, but the host's .env has no {key}; set it there first")
            wanted[key] = host[key]
            continue
        match = _FROM_ENVIRONMENT.match(value)
        if match:
            if match[1] not in environ:
                raise Refused(f"{key}=${{{match[1]}}} in the template, but {match[1]} is not set in this environment")
            value = environ[match[1]]
        if "\n" in value:
            raise Refused(f"{key}: a value must be one line")
        wanted[key] = value
    return wanted


def plan(wanted: dict[str, str], host: dict[str, str]) -> list[Change]:
    changes = [Change(key, "add" if key not in host else "change", host.get(key), value)
               for key, value in wanted.items() if host.get(key) != value]
    changes += [Change(key, "host-only", value, value) for key, value in host.items() if key not in wanted]
    return changes


def refuse_protected(changes: list[Change], allow_secret: bool, allow_db: bool) -> None:
    for change in changes:
        if change.kind == "host-only":
            continue
        if change.key == "SECRET" and not allow_secret:
            raise Refused("the template changes SECRET: every session and token signed with it would stop working; "
                          "keep SECRET=@host, or pass --allow-secret-change if that is what you want")
        if change.key.startswith("DB_") and not allow_db:
            raise Refused(f"the template changes {change.key}: Directus would use another database; keep it @host, "
                          "or pass --allow-db-change if that is what you want")


def render(host_text: str, changes: list[Change], note: str) -> str:
    """The host's file with the changes made: each changed entry replaced where it stands (a
    value over several lines whole), new keys appended; every other byte (comments, order,
    quoting, host-only keys) as it was."""
    text, _ = dotenv.replace_values(host_text, {c.key: dotenv_line(c.key, c.new) for c in changes if c.kind == "change"})
    if text and not text.endswith("\n"):
        text += "\n"
    added = [c for c in changes if c.kind == "add"]
    if added:
        text += "\n".join(["", f"# {note}"] + [dotenv_line(c.key, c.new) for c in added]) + "\n"
    return text


def describe(changes: list[Change]) -> list[list[str]]:
    rows = []
    for c in changes:
        if c.kind == "host-only":
            rows.append([c.key, "kept: only on the host", shown(c.key, c.old), ""])
        else:
            rows.append([c.key, c.kind, shown(c.key, c.old), shown(c.key, c.new)])
    return rows


# -- the flow --------------------------------------------------------------------------------

def read_both(session, tag, file: str | None) -> tuple[str, str, list[Change]]:
    """(host's text, the template's origin, the changes) for the production .env."""
    template_text, origin = read_template(Source(session.config.source), tag, file)
    host_text = session.remote().read_file(session.layout.shared_env, missing_ok=True)
    if host_text is None:
        raise Refused(f"{session.layout.shared_env} is missing: set the host up first (fab deploy.setup or deploy.adopt)")
    host = parse(host_text)
    wanted = resolve(parse(template_text), host)
    for key, value in [*host.items(), *wanted.items()]:  # never printed, whatever prints them
        for secret in ([value] if is_secret(key) else []) + url_secrets.secrets_in(value):
            session.remote().add_secret(secret)
    return host_text, origin, plan(wanted, host)


# The push, top to bottom: production serves on its previous .env until the switch.
CONFIG_PUSH = Pipeline([
    Step("back up the .env", lambda run: back_up(run), plan="a verified backup holding the .env as it is"),
    Step("check the extensions", lambda run: check_extensions(run),
         plan="every extension manifest Directus will load, on the host"),
    Step("write the .env", lambda run: write(run), undo=lambda run: put_back(run),
         plan="the new .env (0600, through a rename)"),
    Step("switch", lambda run: switch(run),
         plan="restart on the new .env through the health gate; a failure puts the previous .env back"),
    Step("record", lambda run: record(run), plan="one line in the deploy log"),
])


@dataclass
class PushRun:
    session: object
    host_text: str  # the .env on the host before the push
    changes: list
    origin: str  # where the template came from
    backup: dict | None = None
    release: str | None = None  # the current release, restarted on the new .env
    extensions: list = field(default_factory=list)
    written: bool = False
    switch_attempted: bool = False


def push(session, host_text: str, changes: list[Change], origin: str) -> dict:
    """Back up the .env, write the new one, go live on it with the normal switch and health
    gate; if that fails, the previous .env goes back."""
    run = PushRun(session, host_text, changes, origin)
    CONFIG_PUSH.run(run, say=session.console.say)
    return {"backup": run.backup["id"], "release": run.release}


def back_up(run: PushRun) -> None:
    run.backup = take_backup(run.session, reason="pre-config-push", parts=("env",))


def check_extensions(run: PushRun) -> None:
    run.release = current_release(run.session.remote(), run.session.layout)
    run.extensions = steps.check_host_extensions(run.session, run.release)


def write(run: PushRun) -> None:
    session, changes = run.session, run.changes
    with session.console.step(f"write the production .env from {run.origin}") as step:
        session.remote().write_file(session.layout.shared_env,
                                    render(run.host_text, changes, f"added by fab config.push from {run.origin}"),
                                    mode="0600")
        run.written = True
        step.detail = (f"{len([c for c in changes if c.kind != 'host-only'])} settings changed; "
                       f"previous in backup {run.backup['id']}")


def put_back(run: PushRun) -> None:
    """The previous .env, when the new one was written but never went live (the switch puts
    it back itself when the gate fails)."""
    if run.written and not run.switch_attempted:
        run.session.remote().write_file(run.session.layout.shared_env, run.host_text, mode="0600")
        run.session.console.say("    the previous .env is back")


def switch(run: PushRun) -> None:
    session, release = run.session, run.release
    run.switch_attempted = True
    try:
        steps.switch(session, release, run.extensions, previous=release)
    except DeployError as failure:
        session.console.say(f"    {failure}: putting the previous .env back")
        session.remote().write_file(session.layout.shared_env, run.host_text, mode="0600")
        if isinstance(failure, RolledBack) and session.switch_method == "bluegreen":
            # the instance on the new .env never received a request; the old one serves on
            raise RolledBack(f"Directus did not pass its health gate with the new .env ({failure}); "
                             "the previous .env is back") from None
        try:
            steps.switch(session, release, run.extensions, previous=release)
        except DeployError as again:
            raise DeployError(f"the new .env failed ({failure}) and so did the previous one ({again}); "
                              f"the .env before the push is in backup {run.backup['id']}") from None
        raise RolledBack(f"Directus did not pass its health gate with the new .env ({failure}); "
                         f"the previous .env is back and serving") from None


def record(run: PushRun) -> None:
    steps.record(run.session, {"action": "config-push", "release": run.release, "backup": run.backup["id"],
                               "changed": [c.key for c in run.changes if c.kind != "host-only"], "outcome": "ok"})
