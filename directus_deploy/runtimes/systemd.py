"""A systemd unit runs Directus (DIRECTUS_SYSTEMD_UNIT): restarted and stopped through
`systemctl`, as root (sudo -n when the deploy user is not root)."""

from __future__ import annotations

from directus_deploy.core.config import Key, parse_name
from directus_deploy.host.remote import as_admin, q
from directus_deploy.runtimes.base import Instance, Runtime


class Systemd(Runtime):
    NAME = "systemd"
    KEYS = (Key("DIRECTUS_SYSTEMD_UNIT", "systemd_unit", parse_name, default="directus", example="directus"),)
    TOOLS = {"systemctl": "restarts Directus when DIRECTUS_SERVICE=systemd"}

    def stop(self) -> str:
        return as_admin("systemctl", "stop", self.config.systemd_unit)

    def start(self, root: str) -> str:
        return as_admin("systemctl", "restart", self.config.systemd_unit)

    def instances(self) -> list[Instance]:
        return [Instance("plain", self.config.systemd_unit, None, kind="systemd unit")]

    def status(self, instance: Instance) -> str:
        return (f"if systemctl is-active --quiet {q(self.config.systemd_unit)}; then echo online; "
                "else echo stopped; fi")
