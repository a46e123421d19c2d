"""Directus restarted by a command of the user's (DIRECTUS_RESTART_COMMAND): the tool can
restart it, not stop it, and knows nothing of its state."""

from __future__ import annotations

from directus_deploy.core.config import Key, parse_line
from directus_deploy.core.errors import ConfigError
from directus_deploy.runtimes.base import Runtime


class Command(Runtime):
    NAME = "command"
    KEYS = (Key("DIRECTUS_RESTART_COMMAND", "restart_command", parse_line, optional=True,
                example="sudo systemctl restart directus"),)

    @classmethod
    def check_config(cls, values: dict, where: str) -> None:
        if values["DIRECTUS_SERVICE"] == "command" and not values["DIRECTUS_RESTART_COMMAND"]:
            raise ConfigError(f"{where}: DIRECTUS_SERVICE=command needs DIRECTUS_RESTART_COMMAND, "
                              "the command that restarts Directus on the host")

    def start(self, root: str) -> str:
        return self.config.restart_command
