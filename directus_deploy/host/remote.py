"""Running commands on a host: the one place where remote commands are quoted, counted,
logged and skipped under --dry-run.

Commands are built as lists of words and quoted here with `shlex.quote`; a few helpers build
small shell scripts out of already-quoted parts (`q`). Secrets never travel in a command line:
they go through the command's standard input (see `run(..., secret_env=...)`).

The helpers at the bottom replace what patchwork offered (exists, directory, read, upload,
atomic symlink switch); patchwork itself cannot be installed next to Fabric 3 (docs/architecture.md).
"""

from __future__ import annotations

import os
import select
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence, Union

import paramiko

from directus_deploy.core.console import Progress
from directus_deploy.core.errors import DeployError

Command = Union[str, Sequence[object]]
LARGE_UPLOAD = 4 << 20  # bytes: above this an upload shows its progress


def q(*words: object) -> str:
    """Quote each word for a POSIX shell and join them: the only way a value enters a command."""
    return " ".join(shlex.quote(str(word)) for word in words)


def as_admin(*words: object) -> str:
    """Shell running a command as root: directly when the session is root, else through
    passwordless sudo (never a prompt: there is no terminal)."""
    return f'if [ "$(id -u)" = 0 ]; then {q(*words)}; else sudo -n {q(*words)}; fi'


@dataclass
class Result:
    command: str
    exit_code: int
    stdout: str
    stderr: str
    skipped: bool = False  # not run: --dry-run and the command changes the host

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class CommandLog:
    """What ran on a host, in order: for the round-trip count and for debugging."""

    entries: list

    def add(self, command: str, seconds: float, exit_code: int | None) -> None:
        self.entries.append({"command": command, "seconds": round(seconds, 3), "exit": exit_code})

    @property
    def round_trips(self) -> int:
        return sum(1 for entry in self.entries if entry["exit"] is not None)


class Remote:
    """One production host, reached through an open, verified Fabric Connection."""

    def __init__(
        self,
        connection,
        *,
        dry_run: bool = False,
        node_path: str | None = None,
        secrets: Iterable[str] = (),
        say: Callable[[str], None] = print,
        secret_guard: Callable[[Iterable[str]], str] | None = None,
        settings_reader=None,
    ):
        self.connection = connection
        # how the settings Directus runs with are read on this host, when not from the running
        # process and its .env (the runtime's: settings_script(root_word), read_settings(root, out))
        self.settings_reader = settings_reader
        # shell that keeps exported secrets from being recorded by what runs Directus (the
        # runtime's), defined before every command that holds secrets
        self.secret_guard = secret_guard
        self.dry_run = dry_run
        self.node_path = node_path
        self._secrets = [s for s in secrets if s]
        self.say = say
        self.log = CommandLog([])

    @property
    def name(self) -> str:
        return self.connection.original_host

    def add_secret(self, value: str | None) -> None:
        """Remember a value learned on the host (a DB password) so output never shows it."""
        if value and len(value) >= 4 and value not in self._secrets:
            self._secrets.append(value)

    def scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):  # one inside another: the longer first
            text = text.replace(secret, "***")
        return text

    # -- running -----------------------------------------------------------------------------

    def run(
        self,
        command: Command,
        *,
        what: str | None = None,
        changes: bool = True,
        check: bool = True,
        stdin: str | None = None,
        secret_env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Run `command` (a list of words, or a script made of `q`-quoted parts).

        `changes=False` marks a read-only query: it also runs under --dry-run, which needs the
        host's real state to print a real plan. `secret_env` values are read by the remote shell
        from standard input and exported, so they never appear in a command line or `ps`.
        `what` names the action in the error raised when the command fails and `check` is set.
        """
        script = command if isinstance(command, str) else q(*command)
        full = self._wrap(script, secret_env)
        if self.dry_run and changes:
            plan = what if what else f"run: {script}"
            self.say(f"    would {self.scrub(plan)} on {self.name}")
            self.log.add(script, 0.0, None)
            return Result(script, 0, "", "", skipped=True)

        feed = ""
        for value in (secret_env or {}).values():
            self.add_secret(value)
            if "\n" in value:
                raise DeployError("a secret value contains a newline; it cannot be passed safely")
            feed += value + "\n"
        feed += stdin or ""

        started = time.monotonic()
        exit_code, stdout, stderr = self._exec(full, feed.encode(), timeout, what or "a command")
        self.log.add(script, time.monotonic() - started, exit_code)
        outcome = Result(script, exit_code, stdout, stderr)
        if check and not outcome.ok:
            raise DeployError(f"{self.name}: {what or 'command'} failed: {self.error_line(outcome)}")
        return outcome
    def _exec(self, command: str, feed: bytes, timeout: float | None, what: str) -> tuple[int, str, str]:
        """One SSH exec channel: send `feed` as stdin then close it, collect output and status.

        Fabric's own `run` pumps stdin one character at a time and cannot say "no more input"
        reliably, so the channel is driven directly (still Fabric's verified connection, which
        reconnects here if the link was lost).
        """
        try:
            self.connection.open()
            transport = self.connection.client.get_transport()
            channel = transport.open_session()
        except (paramiko.SSHException, OSError, EOFError) as why:
            raise DeployError(f"{self.name}: cannot reach the host to {what} ({why or type(why).__name__})") from None
        try:
            channel.exec_command(command)
            sender = threading.Thread(target=self._send_stdin, args=(channel, feed), daemon=True)
            sender.start()
            stdout, stderr = bytearray(), bytearray()
            deadline = time.monotonic() + timeout if timeout else None
            exited_at = None
            while True:
                readable, _, _ = select.select([channel], [], [], 0.2)
                if channel.recv_ready():
                    stdout += channel.recv(1 << 16)
                if channel.recv_stderr_ready():
                    stderr += channel.recv_stderr(1 << 16)
                # sshd may send the exit status before the last of the output: done once the output
                # has ended too (EOF); a background process still holding it gets a few seconds
                drained = not channel.recv_ready() and not channel.recv_stderr_ready()
                if channel.exit_status_ready():
                    exited_at = exited_at or time.monotonic()
                    ended = channel.eof_received or not transport.is_active() or time.monotonic() - exited_at > 3
                    if drained and ended:
                        break
                if deadline and time.monotonic() > deadline:
                    raise DeployError(f"{self.name}: command timed out after {timeout:.0f}s")
            exit_code = channel.recv_exit_status()
            sender.join(timeout=5)
            if exit_code == -1 and not transport.is_active():
                raise DeployError(f"{self.name}: the SSH connection was lost during: {what}")
        except (paramiko.SSHException, OSError, EOFError) as why:
            raise DeployError(f"{self.name}: the SSH connection was lost during: {what} ({why})") from None
        finally:
            channel.close()
        decode = lambda data: bytes(data).decode("utf-8", errors="replace")  # noqa: E731
        return exit_code, decode(stdout), decode(stderr)

    @staticmethod
    def _send_stdin(channel, feed: bytes) -> None:
        try:
            if feed:
                channel.sendall(feed)
            channel.shutdown_write()  # EOF: nothing on the host waits for more input
        except OSError:
            pass  # the command ended without reading all of it

    def script(self, body: str, *, critical: bool = False, **kwargs) -> Result:
        """Run a multi-step script under bash with `set -eo pipefail`: the first failing step
        (even inside a pipeline) stops it. A login shell may be dash, which lacks pipefail.

        `critical`: the script runs to its end even if this side dies or the SSH link drops
        (hangups ignored, output kept in files until it is done), for steps that must never
        stop halfway: a switch and restart, a restore, migrations.
        """
        guard = self._guard(kwargs.get("secret_env"))
        guard = guard + "\n" if guard else ""
        inner = q("bash", "-c", "set -eo pipefail\n" + guard + body)
        if not critical:
            return self.run(inner, **kwargs)
        wrapper = (
            "o=$(mktemp) && e=$(mktemp) && trap '' HUP && "
            f"{{ {inner} >\"$o\" 2>\"$e\"; rc=$?; cat \"$o\"; cat \"$e\" >&2; rm -f \"$o\" \"$e\"; exit $rc; }}"
        )
        return self.run(wrapper, **kwargs)

    def sftp(self):
        """A fresh SFTP session on the (re)opened connection."""
        try:
            self.connection.open()
            return self.connection.client.open_sftp()
        except (paramiko.SSHException, OSError, EOFError) as why:
            raise DeployError(f"{self.name}: cannot open SFTP ({why})") from None

    def query(self, command: Command, **kwargs) -> Result:
        """A read-only command: runs even under --dry-run."""
        return self.run(command, changes=False, **kwargs)

    def error_line(self, result: Result) -> str:
        lines = [l.strip() for l in (result.stderr or result.stdout).splitlines() if l.strip()]
        detail = lines[-1] if lines else f"exit code {result.exit_code}"
        return self.scrub(detail)

    def _guard(self, secret_env) -> str:
        return self.secret_guard(list(secret_env)) if secret_env and self.secret_guard else ""

    def _wrap(self, script: str, secret_env: Mapping[str, str] | None) -> str:
        prefix = ""
        if self.node_path:
            # nvm or tarball installs are not on a non-interactive session's PATH
            prefix += f'PATH={q(self.node_path)}:"$PATH"; export PATH; '
        if secret_env:
            for name in secret_env:
                if not name.isidentifier():
                    raise ValueError(name)
                prefix += f"IFS= read -r {name} && export {name} && "
            guard = self._guard(secret_env)
            prefix += guard + " && " if guard else ""
            # braces: the whole script runs only after the reads, whatever operators it holds
            return prefix + "{ " + script + "\n}"
        return prefix + script

    # -- helpers (what patchwork offered) ----------------------------------------------------

    def exists(self, path: str) -> bool:
        return self.query(["test", "-e", path], check=False).ok

    def is_dir(self, path: str) -> bool:
        return self.query(["test", "-d", path], check=False).ok

    def make_dir(self, path: str, mode: str | None = None) -> None:
        words = ["mkdir", "-p"] + (["-m", mode] if mode else []) + [path]
        self.run(words, what=f"create folder {path}")
        if mode:  # -m applies to the last component only; make sure an existing one gets it too
            self.run(["chmod", mode, path], what=f"set mode of {path}")

    def read_file(self, path: str, *, missing_ok: bool = False) -> str | None:
        result = self.query(["cat", "--", path], check=False)
        if result.ok:
            return result.stdout
        if missing_ok and not self.exists(path):
            return None
        raise DeployError(f"{self.name}: cannot read {path}: {self.error_line(result)}")

    def write_file(self, path: str, content: str, *, mode: str = "0644") -> None:
        """Write through a temporary file and a rename: a reader never sees half a file."""
        temp = f"{path}.tmp-{os.getpid()}"
        script = f"umask 077 && cat > {q(temp)} && chmod {q(mode)} {q(temp)} && mv -f -- {q(temp)} {q(path)}"
        self.run(script, stdin=content, what=f"write {path}")

    def switch_symlink(self, link: str, target: str) -> None:
        """Point `link` at `target` atomically: a new symlink renamed over the old one.

        `rm` + `ln` would leave a moment with no `current` at all (promise 4 in docs/architecture.md).
        """
        temp = f"{link}.new-{os.getpid()}"
        script = f"ln -sfn -- {q(target)} {q(temp)} && mv -T -- {q(temp)} {q(link)}"
        self.run(script, what=f"switch {link} to {target}")

    def read_link(self, link: str) -> str | None:
        result = self.query(["readlink", "--", link], check=False)
        return result.stdout.strip() if result.ok else None

    def upload(
        self,
        local: Path,
        remote: str,
        *,
        mode: str = "0600",
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Copy a local file to the host over SFTP, into a temp name renamed when complete."""
        size = Path(local).stat().st_size
        if self.dry_run:
            self.say(f"    would upload {local} ({size} bytes) to {self.name}:{remote}")
            self.log.add(f"upload {remote}", 0.0, None)
            return
        temp = f"{remote}.part-{os.getpid()}"
        started = time.monotonic()
        meter = None
        if progress is None and size > LARGE_UPLOAD:
            meter = Progress(size, self.say)
            sent = [0]

            def progress(done: int, total: int) -> None:  # paramiko reports a running total
                meter.add(done - sent[0])
                sent[0] = done
        sftp = self.sftp()
        try:
            sftp.put(str(local), temp, callback=progress, confirm=True)
            sftp.chmod(temp, int(mode, 8))
            sftp.posix_rename(temp, remote)
            if meter:
                meter.end()
        except (OSError, EOFError, paramiko.SSHException) as why:
            self.run(["rm", "-f", "--", temp], check=False)
            raise DeployError(f"{self.name}: upload of {local} to {remote} failed: {why}") from None
        finally:
            sftp.close()
        self.log.add(f"upload {remote}", time.monotonic() - started, 0)


class RemoteGroup:
    """Several hosts at once, through Fabric's own ThreadingGroup: the same upload and the
    same script on every host in parallel. Each host's command is still quoted, counted,
    logged and skipped under --dry-run here, by its Remote."""

    def __init__(self, remotes: Sequence[Remote]):
        from fabric import ThreadingGroup

        self.remotes = list(remotes)
        self.group = ThreadingGroup.from_connections([remote.connection for remote in self.remotes])
        self._by_connection = {id(remote.connection): remote for remote in self.remotes}

    @property
    def dry_run(self) -> bool:
        return self.remotes[0].dry_run

    def _outcomes(self, call) -> dict:
        """{Remote: result or exception} of a group call; hosts that failed keep their exception."""
        from fabric.exceptions import GroupException

        try:
            results = call()
        except GroupException as failure:
            results = failure.result
        return {self._by_connection[id(connection)]: value for connection, value in results.items()}

    def upload(self, local: Path, remote_path: str) -> None:
        """The same file to the same path on every host (a temporary name the caller renames)."""
        if self.dry_run:
            for remote in self.remotes:
                remote.say(f"    would upload {local} ({Path(local).stat().st_size} bytes) to {remote.name}:{remote_path}")
            return
        started = time.monotonic()
        outcomes = self._outcomes(lambda: self.group.put(str(local), remote=remote_path))
        failed = [f"{remote.name}: {value}" for remote, value in outcomes.items() if isinstance(value, BaseException)]
        for remote in self.remotes:
            remote.log.add(f"upload {remote_path}", time.monotonic() - started, 0)
        if failed:
            raise DeployError(f"upload of {local} failed on {len(failed)} host(s): {'; '.join(failed)}")

    def script(self, body: str, *, what: str) -> dict[Remote, Result]:
        """One bash script (`set -eo pipefail`) on every host in parallel. No secrets: Fabric's
        run cannot close standard input, so nothing is read from it."""
        inner = q("bash", "-c", "set -eo pipefail\n" + body)
        if self.dry_run:
            for remote in self.remotes:
                remote.say(f"    would {what} on {remote.name}")
                remote.log.add(inner, 0.0, None)
            return {remote: Result(inner, 0, "", "", skipped=True) for remote in self.remotes}
        started = time.monotonic()
        outcomes = self._outcomes(lambda: self.group.run(self.remotes[0]._wrap(inner, None), hide=True, warn=True,
                                                         in_stream=False))
        results = {}
        for remote, value in outcomes.items():
            if isinstance(value, BaseException):
                results[remote] = Result(inner, 255, "", f"cannot reach the host ({value})")
            else:
                results[remote] = Result(inner, value.exited, value.stdout, value.stderr)
            remote.log.add(inner, time.monotonic() - started, results[remote].exit_code)
        return results
