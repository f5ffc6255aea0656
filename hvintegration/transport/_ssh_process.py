"""Remote processes on SSH channels: start them the same way on every login shell, and kill them.

sshd hands the command line of a channel to the user's login shell, which
may be dash, bash, zsh or tcsh; they quote differently, and tcsh refuses a
newline inside quotes. So no command line the transport sends holds a
caller's word: every shell command runs through one fixed launcher,
:data:`LAUNCH_LINE`, whose only quoting (one pair of single quotes around
text with no newline or ``!``) means the same in all four. The
launcher is POSIX ``sh``:

1. it reports its process id on stderr (a marker line); sshd made it the
   leader of a new session, so every process the command starts belongs
   to that session unless it leaves it on purpose;
2. it reads one line from stdin, :func:`frame`: the argv quoted for
   ``sh`` (newlines in words spelled ``"$n"``, so the line is one line),
   and a per-call token exported as ``HVINTEGRATION_CALL``, which every
   descendant inherits, even one that leaves the session;
3. it execs the command, which keeps the id and reads the rest of
   stdin as its input.

Closing a channel that has no terminal does not stop the command behind
it, and a signal sent to ``sudo`` never reaches the root child (SIGKILL
cannot be relayed). So a timed-out or cancelled command is killed by
:data:`KILL_SCRIPT`, run over a second channel through the same launcher,
under ``sudo -n`` when the command itself ran under sudo: it stops every
process of the session, every holder of the token and every descendant of
either (stopped processes cannot fork away), then kills them all. It uses
only ``sh`` builtins, ``grep`` and ``/proc``, never ``kill -- -PID`` (dash
refuses the ``--``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncssh

__all__ = [
    "KILL_LOOP",
    "KILL_SCRIPT",
    "KILL_TIMEOUT",
    "Killer",
    "LAUNCH_LINE",
    "PID_PREFIX",
    "SSHPowerShell",
    "as_bytes",
    "carries_token",
    "carry_token",
    "frame",
    "kill_argv",
    "kill_remote",
    "new_token",
    "read_pid",
    "runs_under_sudo",
    "signal_number",
]

KILL_TIMEOUT = 5.0
"""Seconds a remote kill, or the close of a channel, may take: the grace a
timed-out or cancelled command may add to its call."""

_PID_MARKER = b"hvintegration-pid:"
PID_PREFIX = 'printf "hvintegration-pid:%s\\n" "$$" >&2 && exec '
"""Put before a POSIX command line: it reports the shell's id, then execs the command."""

_STDERR_KEPT = 8192
_PRELUDE_LIMIT = 64 * 1024

_LAUNCHER = (
    'printf "hvintegration-pid:%s\\n" $$ >&2 || exit 125; '
    "IFS= read -r hvintegration_argv || exit 125; "
    'eval "$hvintegration_argv" || exit 125; '
    'exec "$@"'
)
LAUNCH_LINE = f"exec /bin/sh -c '{_LAUNCHER}' hvintegration"
"""The command line of every shell command's channel: the same for every login shell."""

KILL_SCRIPT = r"""
s=$1 t=HVINTEGRATION_CALL=$2 k=" " round=0
# No token ("-"): the session alone.
case $2 in ""|-) t="" ;; esac
while [ "$round" -lt 50 ]; do
    round=$((round + 1))
    # The token's holders: grep reads every environment this user may read.
    e=" "
    [ -z "$t" ] || for f in $(grep -lsF -e "$t" /proc/[0-9]*/environ 2>/dev/null); do
        f=${f#/proc/}
        e="$e${f%/environ} "
    done
    new=0
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        [ "$p" = "$$" ] && continue
        case $k in *" $p "*) continue ;; esac
        { read -r st < "$d/stat"; } 2>/dev/null || continue
        # After the command name: state ppid pgrp session ...
        set -f
        # shellcheck disable=SC2086
        set -- ${st##*) }
        set +f
        [ "$1" = Z ] && continue
        hit=0
        # The session's leader has the session's id as its own.
        [ "$4" = "$s" ] && hit=1
        case $k in *" $2 "*) hit=1 ;; esac
        case $e in *" $p "*) hit=1 ;; esac
        [ "$hit" = 1 ] || continue
        # Stopped, it cannot fork a child this scan would miss.
        kill -STOP "$p" 2>/dev/null
        k="$k$p "
        new=1
    done
    [ "$new" = 0 ] && break
done
for p in $k; do kill -KILL "$p" 2>/dev/null; done
for p in $k; do kill -CONT "$p" 2>/dev/null; done
# Killed means gone: a process this user may not kill (root's, when the
# command ran sudo inside a shell) is still there, and says so.
round=0
while [ "$round" -lt 20 ]; do
    round=$((round + 1))
    left=""
    for p in $k; do
        { read -r st < "/proc/$p/stat"; } 2>/dev/null || continue
        set -f
        # shellcheck disable=SC2086
        set -- ${st##*) }
        set +f
        [ "$1" = Z ] || left="$left $p"
    done
    [ -z "$left" ] && break
    sleep 0.05
done
if [ -n "$left" ]; then echo "left:$left"; exit 1; fi
echo "killed:$k"
"""
"""Kill a command's session (``$1``, or ``-``), the holders of its token
(``$2``) and their descendants. Fixed text; the ids travel as arguments."""


KILL_LOOP = r"""
script=$1
while read -r s t u; do
    if [ "$u" = 1 ]; then
        sudo -n -- sh -c "$script" hvintegration-kill "$s" "$t" < /dev/null 2> /dev/null
    else
        sh -c "$script" hvintegration-kill "$s" "$t" < /dev/null 2> /dev/null
    fi
    echo "end:$?"
done
"""
"""The kill channel's loop: one request a line (session, token, 1 for sudo),
answered by :data:`KILL_SCRIPT`'s output and an ``end:STATUS`` line."""


class Killer:
    """One kill channel per connection, opened before any command and kept open.

    sshd counts a session until its command has exited, so commands still
    running at their timeout can fill every session ``MaxSessions`` allows,
    and a kill that needed a new channel then could not run. Learning the
    limit is no help either: it is learned from a refusal, when the
    channels already open may be all commands. So each connection opens
    this channel first, a shell that reads kill requests on stdin and runs
    :data:`KILL_SCRIPT` for each (under ``sudo -n`` when asked): a kill
    never needs a channel. The requests go one at a time; a request that
    fails midway leaves the channel closed (:meth:`alive` is then false).
    """

    def __init__(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._process = process
        self._lock = asyncio.Lock()
        self._broken = False

    @classmethod
    async def open(cls, connection: asyncssh.SSHClientConnection) -> Killer:
        """Open the kill channel and wait for its shell to start.

        Raises:
            asyncssh.ChannelOpenError: The server refused the channel.
            ConnectionError: The shell did not start.
        """
        process = await connection.create_process(LAUNCH_LINE, encoding=None)
        try:
            argv = ["sh", "-c", KILL_LOOP, "hvintegration-killer", KILL_SCRIPT]
            process.stdin.write(frame(argv, new_token()))
            pid, _ = await read_pid(process)
            if pid is None:
                raise ConnectionError("the kill channel's shell did not start")
        except BaseException:
            process.close()
            raise
        return cls(process)

    def alive(self) -> bool:
        """Whether the channel can take a request."""
        process = self._process
        return not self._broken and process.exit_status is None and not process.is_closing()

    async def kill(self, session: int | None, token: str, *, sudo: bool) -> bool:
        """Run :data:`KILL_SCRIPT` for a session and token; whether it ran to the end.

        Raises:
            ConnectionError: The channel is closed, or closed during the request.
        """
        async with self._lock:
            if not self.alive():
                raise ConnectionError("the kill channel is closed")
            try:
                request = f"{session or '-'} {token or '-'} {1 if sudo else 0}\n"
                self._process.stdin.write(request.encode())
                killed = False
                while True:
                    line = as_bytes(await self._process.stdout.readline())
                    if not line.endswith(b"\n"):
                        raise ConnectionError("the kill channel closed")
                    if line.startswith(b"killed:"):
                        killed = True
                    elif line.startswith(b"end:"):
                        return killed and line.strip() == b"end:0"
            except BaseException:
                # Half a request leaves the answers out of step: never reuse it.
                self.close()
                raise

    def close(self) -> None:
        """Close the channel; its shell ends with its stdin."""
        self._broken = True
        with contextlib.suppress(Exception):
            self._process.close()


def new_token() -> str:
    """A fresh token for one call, exported to everything the call starts."""
    return secrets.token_hex(12)


def _word(word: str) -> str:
    # shlex.quote puts the whole word in single quotes (its own quotes
    # become '"'"'), so every newline is inside single quotes: close them,
    # add "$n" (a newline), reopen. The frame then stays one line.
    return shlex.quote(word).replace("\n", "'\"$n\"'")


def frame(argv: Sequence[str], token: str) -> bytes:
    """The launcher's first line of stdin: the token and the argv, for ``eval``.

    Every word is quoted by :func:`shlex.quote`; nothing is read as syntax.

    Example:
        >>> frame(["printf", "%s", "a b", "x\\ny"], "t0").split(b"; ")[-1]
        b'set -- printf %s \\'a b\\' \\'x\\'"$n"\\'y\\'\\n'
    """
    words = " ".join(_word(word) for word in carry_token(argv, token))
    # The shell's IFS starts as space, tab, newline: its last character is
    # the newline the frame cannot hold literally.
    line = f"HVINTEGRATION_CALL={token}; export HVINTEGRATION_CALL; n=${{IFS#??}}; set -- {words}\n"
    return line.encode("utf-8")


def carry_token(argv: Sequence[str], token: str) -> list[str]:
    """``argv``, with the token carried through ``sudo -n`` when that is how it starts.

    sudo's ``env_reset`` drops ``HVINTEGRATION_CALL``, and a root process
    that left the command's session could then be found by nothing. So
    ``sudo -n [--] cmd ...`` becomes ``sudo -n -- env HVINTEGRATION_CALL=TOKEN
    cmd ...``. Other sudo forms are left alone (:func:`carries_token`).

    Example:
        >>> carry_token(["sudo", "-n", "--", "id"], "t0")
        ['sudo', '-n', '--', 'env', 'HVINTEGRATION_CALL=t0', 'id']
    """
    if not carries_token(argv) or not runs_under_sudo(argv):
        return list(argv)
    rest = argv[3:] if argv[2] == "--" else argv[2:]
    return [argv[0], "-n", "--", "env", f"HVINTEGRATION_CALL={token}", *rest]


def carries_token(argv: Sequence[str]) -> bool:
    """Whether every process the command starts holds its token, even one that leaves its session.

    True unless the command runs through sudo in a form other than
    ``sudo -n [--] cmd ...``, whose environment sudo resets.
    """
    if not runs_under_sudo(argv):
        return True
    if len(argv) < 3 or argv[1] != "-n":
        return False
    rest = argv[3:] if argv[2] == "--" else argv[2:]
    return bool(rest) and not rest[0].startswith("-") and "=" not in rest[0]


def runs_under_sudo(argv: Sequence[str]) -> bool:
    """Whether a command runs through ``sudo``, so that only root can kill what it started."""
    return bool(argv) and argv[0].rsplit("/", 1)[-1] == "sudo"


def kill_argv(session: int | None, token: str, *, sudo: bool) -> list[str]:
    """The argv that kills a command's session and token holders (:data:`KILL_SCRIPT`)."""
    argv = ["sh", "-c", KILL_SCRIPT, "hvintegration-kill", str(session or "-"), token or "-"]
    return ["sudo", "-n", "--", *argv] if sudo else argv


async def read_pid(process: asyncssh.SSHClientProcess[bytes]) -> tuple[int | None, bytes]:
    """The remote process id from the marker line, and any stderr before it.

    Login shells may print to stderr before running the command (a noisy
    ``.bashrc``), so the marker is searched for rather than assumed first;
    what came before it is kept as the command's stderr.

    Returns:
        The id (``None`` when stderr ended without a marker) and the stderr
        that came before the marker.
    """
    prelude = b""
    while len(prelude) < _PRELUDE_LIMIT:
        line = as_bytes(await process.stderr.readline())
        if not line:
            break
        if line.startswith(_PID_MARKER):
            text = line[len(_PID_MARKER) :].strip()
            return (int(text) if text.isdigit() else None), prelude
        prelude += line
    return None, prelude


async def run_kill(
    connection: asyncssh.SSHClientConnection,
    session: int | None,
    token: str,
    *,
    sudo: bool,
) -> bool:
    """Run :data:`KILL_SCRIPT` over a new channel; whether it ran to the end.

    Raises:
        asyncssh.ChannelOpenError: The server refused the channel.
    """
    process = await connection.create_process(LAUNCH_LINE, encoding=None)
    try:
        process.stdin.write(frame(kill_argv(session, token, sudo=sudo), new_token()))
        process.stdin.write_eof()
        stdout = as_bytes(await process.stdout.read())
        await process.wait_closed()
    finally:
        process.close()
    return process.exit_status == 0 and stdout.startswith(b"killed:")


async def kill_remote(
    connection: asyncssh.SSHClientConnection,
    process: asyncssh.SSHClientProcess[bytes],
    pid: int | None,
) -> None:
    """Kill a remote command's session, then close its channel. Never raises.

    For the PowerShell channels, whose command line reports its id
    (:data:`PID_PREFIX`) but carries no token.
    """
    if pid is not None and not connection.is_closed():
        kill = run_kill(connection, pid, "", sudo=False)
        with contextlib.suppress(Exception):
            await asyncio.shield(asyncio.wait_for(kill, KILL_TIMEOUT))
    process.close()


class SSHPowerShell:
    """A remote PowerShell on one SSH channel (a ``PowerShellProcess``).

    Args:
        connection: The connection the channel runs on.
        process: The channel's process.
        pid: The remote process id, when the login shell is POSIX.
        on_connection_lost: Called with the connection when a close finds it
            closed, so the transport makes a new one next time.
        on_closed: Called once when the channel is closed or aborted, so the
            transport gives back the channel slot it holds.
    """

    def __init__(
        self,
        connection: asyncssh.SSHClientConnection,
        process: asyncssh.SSHClientProcess[bytes],
        pid: int | None,
        on_connection_lost: Callable[[asyncssh.SSHClientConnection], None],
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        self._connection = connection
        self._on_closed = on_closed
        self._process = process
        self._pid = pid
        self._on_connection_lost = on_connection_lost
        self._stderr = bytearray()
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
        self._closed = False

    async def _drain_stderr(self) -> None:
        while chunk := await self._process.stderr.read(65536):
            self._stderr += as_bytes(chunk)
            del self._stderr[:-_STDERR_KEPT]

    async def write(self, data: bytes) -> None:
        import asyncssh

        try:
            self._process.stdin.write(data)
            await self._process.stdin.drain()
        except (asyncssh.Error, BrokenPipeError) as exc:
            raise ConnectionResetError(str(exc)) from exc

    async def read(self, size: int) -> bytes:
        import asyncssh

        try:
            return as_bytes(await self._process.stdout.read(size))
        except asyncssh.Error as exc:
            raise ConnectionResetError(str(exc)) from exc

    def stderr_text(self) -> str:
        return self._stderr.decode("utf-8", "replace")

    def alive(self) -> bool:
        return (
            not self._closed
            and self._process.exit_status is None
            and not self._connection.is_closed()
        )

    def abort(self) -> None:
        # Closing the channel ends the remote loop's stdin, which it watches
        # even mid-operation; the connection itself is the transport's.
        self._closed = True
        with contextlib.suppress(Exception):
            self._process.close()
        self._stderr_task.cancel()
        self._done()

    def _done(self) -> None:
        callback, self._on_closed = self._on_closed, None
        if callback is not None:
            callback()

    async def close(self, grace: float) -> int | None:
        self._closed = True
        process = self._process
        if grace > 0 and not self._connection.is_closed():
            # End of stdin ends the remote loop, which exits on its own.
            with contextlib.suppress(Exception):
                process.stdin.write_eof()
                await asyncio.wait_for(process.wait_closed(), grace)
        if process.exit_status is None:
            # Still running: closing the channel ends its stdin, which the
            # remote loop watches even mid-operation; on a POSIX shell the
            # process group is also killed by id.
            await kill_remote(self._connection, process, self._pid)
        process.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait_closed(), KILL_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        self._stderr_task.cancel()
        self._done()
        if self._connection.is_closed():
            self._on_connection_lost(self._connection)
        status = process.exit_status
        return None if status is None or status < 0 else status


def as_bytes(data: object) -> bytes:
    """``data`` as bytes: asyncssh hands back ``str`` or ``bytes`` by encoding."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return b""


def signal_number(name: str) -> int:
    """The number of a signal named as SSH names it (``KILL``); 0 when unknown."""
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return 0
