"""What adopting an install must change besides moving its state: pure, checked without a host.

Releases share state through relative links (`uploads`, `database/`, `extensions/.registry`), so
the production `.env` must name that state by paths relative to the release. Installs made by
Directus's own tools do not always: `directus init` puts the SQLite file beside package.json
(`./data.db`, or its absolute path). Adoption moves such state into `shared/` itself and
rewrites only the settings that must change; paths outside the install folder stay as they are.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from directus_deploy.core import dotenv
from directus_deploy.core.errors import Refused
from directus_deploy.state.settings import dotenv_line

SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")  # files SQLite keeps beside the database
PATH_KEYS = ("DB_FILENAME", "STORAGE_LOCAL_ROOT", "EXTENSIONS_PATH")
DATABASE_FOLDER = "database"


@dataclass(frozen=True)
class Rewrite:
    key: str
    old: str
    new: str
    why: str


@dataclass
class AdoptionPlan:
    rewrites: list[Rewrite] = field(default_factory=list)
    # (file in the install, name inside shared/database/, required): a SQLite file (and its
    # -wal/-shm/-journal) that sits in the install folder itself, moved into the database folder
    database_files: list[tuple[str, str, bool]] = field(default_factory=list)

    def env(self, env: dict) -> dict:
        """The settings Directus will run with after adoption."""
        return {**env, **{r.key: r.new for r in self.rewrites}}


def plan_adoption(root: str, env: dict) -> AdoptionPlan:
    """The .env rewrites and extra moves that adopting the install at `root` needs."""
    plan = AdoptionPlan()
    relative: dict[str, str] = {}
    for key in PATH_KEYS:
        value = str(env.get(key) or "").strip()
        if key == "DB_FILENAME" and str(env.get("DB_CLIENT", "")).strip() != "sqlite3":
            continue
        if value.startswith("/"):
            normal = posixpath.normpath(value)
            if normal.startswith(root.rstrip("/") + "/"):
                relative[key] = "./" + posixpath.relpath(normal, root)
                plan.rewrites.append(Rewrite(key, value, relative[key], "an absolute path into the install folder, "
                                             "which releases replace: relative, so it follows the state into shared/"))
    filename = relative.get("DB_FILENAME") or str(env.get("DB_FILENAME") or "").strip()
    if str(env.get("DB_CLIENT", "")).strip() == "sqlite3" and filename and not filename.startswith("/"):
        normal = posixpath.normpath(filename)
        if "/" not in normal and normal not in (".", ".."):
            # beside package.json: the file moves into a folder of its own, shared by releases
            new = f"./{DATABASE_FOLDER}/{normal}"
            plan.rewrites = [r for r in plan.rewrites if r.key != "DB_FILENAME"]
            plan.rewrites.append(Rewrite("DB_FILENAME", str(env.get("DB_FILENAME")), new,
                                         "the SQLite file sat in the install folder itself: it moves into "
                                         f"{DATABASE_FOLDER}/, shared by every release, with its -wal/-shm files"))
            plan.database_files.append((normal, normal, True))
            plan.database_files += [(normal + suffix, normal + suffix, False) for suffix in SQLITE_COMPANIONS]
    return plan


def rewrite_env_text(text: str, rewrites: list[Rewrite]) -> str:
    """The .env text with each rewritten key's entry replaced, a comment saying what it was;
    every other byte (comments, quoting, order) as it was."""
    text, done = dotenv.replace_values(text, {
        r.key: f"# {r.key} was {r.old!s} before adoption by directus-deploy\n{dotenv_line(r.key, r.new)}"
        for r in rewrites})
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "".join(dotenv_line(r.key, r.new) + "\n" for r in rewrites if r.key not in done)


def adopted_env_text(settings, file_text: str | None, rewrites: list[Rewrite]) -> str | None:
    """The `.env` the releases will share, when it cannot simply be the install's own moved
    over: settings rewritten, settings only the process environment gave (a process manager's
    `env` block or environment file: a restart by this tool starts Directus without
    them), or settings in a JSON/YAML file CONFIG_PATH names. None: move the .env as it is."""
    if settings.format == "js":
        raise Refused(f"CONFIG_PATH={settings.config_path} is JavaScript, evaluated each time Directus starts: "
                      "adopt keeps settings in shared/.env; write them into a .env (or a JSON/YAML file) and run again")
    rewritten = {r.key: r.new for r in rewrites}
    extra = {k: rewritten.get(k, v) for k, v in settings.only_in_process.items()}
    if settings.format in ("json", "yaml"):
        values = {k: v for k, v in settings.env.items() if k in settings.file_keys and k != "CONFIG_PATH"}
        values = {**{k: rewritten.get(k, v) for k, v in values.items()}, **extra}
        head = [f"# Directus's settings, written by directus-deploy adopt from {settings.config_path} "
                "and the process environment Directus ran with"]
        return "\n".join(head + [dotenv_line(k, v) for k, v in values.items()]) + "\n"
    if not rewrites and not extra:
        return None
    text = rewrite_env_text(file_text or "", [r for r in rewrites if r.key not in extra])
    if extra:
        text += ("\n# settings Directus took from its process environment (its process manager's "
                 "settings), written here by directus-deploy adopt\n")
        text += "".join(dotenv_line(k, v) + "\n" for k, v in extra.items())
    return text
