"""``kubelite logs``, ``kubelite exec`` and ``kubelite port-forward``: kubectl's streaming verbs, over the
same wire as kubectl (``pods/log`` as a chunked text stream; ``pods/exec`` as a WebSocket with
``v5.channel.k8s.io``; ``pods/portforward`` as a WebSocket with the channel protocol, one WebSocket per
local connection).

kubectl's behaviour kept: the container is ``-c``, else the pod's ``kubectl.kubernetes.io/default-container``
annotation, else its first container (``Defaulted container "a" out of: a, b`` on stderr when there were
several); exec into a completed pod and port-forward to a pod that is not running are refused before any
stream; exec exits with the command's exit code; port-forward prints ``Forwarding from ADDR:LOCAL ->
REMOTE`` per listener and ``Handling connection for LOCAL`` per connection, and runs until interrupted.

When the server refuses a WebSocket, the same request is made once more as plain HTTP (as kubectl falls back
to SPDY) so that the server's Status, which a refused handshake does not carry, is what the user reads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from functools import partial
from typing import IO, Any

import aiohttp
from multidict import MultiDict

from kubelite.api.registry import by_resource
from kubelite.cli.output import api_error_text
from kubelite.cli.session import CliError, Session, add_bool_flag, run
from kubelite.client.rest import ApiException, Client, TransportError

PODS = by_resource("", "v1", "pods")
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
EXEC_PROTOCOL = "v5.channel.k8s.io"
PORT_FORWARD_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_MESSAGE = 16 * 1024 * 1024


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("logs", parents=parents, help="print the logs of a container in a pod",
                       description="Print the logs of a container in a pod (kubectl logs).")
    p.add_argument("pod", metavar="POD | pod/NAME")
    p.add_argument("-c", "--container", default="", help="the container (default: the pod's default container)")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines")
    p.add_argument("-p", "--previous", action="store_true", help="the previous instance of the container")
    p.add_argument("--tail", type=int, default=-1, help="lines of recent log to show (-1: all)")
    p.add_argument("--since", type=duration_seconds, default=None, metavar="DURATION",
                   help="only lines newer than a relative duration like 5s, 2m or 3h")
    p.add_argument("--since-time", default="", metavar="RFC3339", help="only lines after this time")
    p.add_argument("--limit-bytes", type=int, default=0, help="at most this many bytes of log")
    add_bool_flag(p, "--timestamps", default=False, help="start each line with its time (RFC 3339)")
    p.set_defaults(func=lambda args: run(args, partial(logs, args)))

    e = sub.add_parser("exec", parents=parents, help="run a command in a container",
                       description="Run a command in a container (kubectl exec POD -- COMMAND [ARGS...]).")
    e.add_argument("pod", metavar="POD | pod/NAME")
    e.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    _exec_flags(e)
    e.set_defaults(func=lambda args: run(args, partial(exec_command, args)))

    f = sub.add_parser("port-forward", parents=parents, help="forward local ports to a pod",
                       description="Forward local ports to a pod (kubectl port-forward POD [LOCAL:]REMOTE...).")
    f.add_argument("pod", metavar="POD | pod/NAME")
    f.add_argument("ports", nargs="+", metavar="[LOCAL_PORT:]REMOTE_PORT")
    f.add_argument("--address", default="localhost",
                   help="comma-separated addresses to listen on (localhost means 127.0.0.1)")
    f.set_defaults(func=lambda args: run(args, partial(port_forward, args)))


def _exec_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--container", default="",
                        help="the container (default: the pod's default container)")
    parser.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the container")
    parser.add_argument("-t", "--tty", action="store_true", help="stdin is a TTY")


def exec_command_line(args: argparse.Namespace) -> list[str]:
    """The command after ``--``; flags between the pod and ``--`` (``exec POD -c app -it -- sh``, which
    argparse leaves in the remainder) are parsed into ``args``."""
    rest = list(args.command)
    if "--" not in rest:
        return rest
    cut = rest.index("--")
    flags = argparse.ArgumentParser(prog="kubelite exec", add_help=False)
    _exec_flags(flags)
    given = flags.parse_args(rest[:cut])
    args.container = given.container or args.container
    args.stdin = args.stdin or given.stdin
    args.tty = args.tty or given.tty
    return rest[cut + 1 :]


# --- shared ------------------------------------------------------------------------------------------------

def duration_seconds(text: str) -> int:
    """A Go duration (``1h30m``, ``90s``, ``500ms``) as whole seconds, rounded up as kubectl does."""
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise argparse.ArgumentTypeError(f'invalid duration "{text}"')
    return max(int(-(-total // 1)), 0)


def pod_name(arg: str) -> str:
    kind, sep, name = arg.partition("/")
    if not sep:
        return arg
    if kind.lower() not in ("pod", "pods", "po"):
        raise CliError(f"only pods are supported here, not {kind!r}")
    return name


def choose_container(pod: dict[str, Any], wanted: str, err: IO[str]) -> str:
    if wanted:
        return wanted
    spec = pod.get("spec") or {}
    names = [c.get("name", "") for c in spec.get("containers") or []]
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION, "")
    if annotated in names:
        return str(annotated)
    if not names:
        raise CliError(f"pod {pod['metadata']['name']} has no containers")
    if len(names) > 1:
        everything = names + [f"{c.get('name', '')} (init)" for c in spec.get("initContainers") or []]
        err.write(f'Defaulted container "{names[0]}" out of: {", ".join(everything)}\n')
    return str(names[0])


def _write(stream: IO[str], data: bytes) -> None:
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()


def _ws_session(client: Client) -> aiohttp.ClientSession:
    ssl_context = client.config.ssl_context
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context if ssl_context is not None else False))


async def _connect(session: aiohttp.ClientSession, client: Client, path: str, params: list[tuple[str, str]],
                   protocols: tuple[str, ...]) -> aiohttp.ClientWebSocketResponse:
    """Open a WebSocket to the API server; a refusal is replayed as plain HTTP to raise the server's Status."""
    config = client.config
    try:
        return await session.ws_connect(config.server + path, params=params, protocols=protocols,
                                        headers=config.auth_headers(), server_hostname=config.tls_server_name,
                                        max_msg_size=_MAX_MESSAGE, autoping=True, heartbeat=30.0)
    except aiohttp.WSServerHandshakeError as e:
        await client.request("GET", path, params=MultiDict(params))  # raises the server's Status
        raise CliError(f"unable to upgrade connection: {e.status} {e.message}") from None
    except aiohttp.ClientError as e:
        raise CliError(f"unable to connect to {config.server}: {e}") from None


# --- logs --------------------------------------------------------------------------------------------------

async def logs(args: argparse.Namespace, s: Session) -> int:
    name = pod_name(args.pod)
    pod = await s.client.get(PODS, name, s.namespace)
    params = {"container": choose_container(pod, args.container, s.err)}
    for key, on in (("follow", args.follow), ("previous", args.previous), ("timestamps", args.timestamps)):
        if on:
            params[key] = "true"
    if args.tail >= 0:
        params["tailLines"] = str(args.tail)
    if args.since is not None and args.since_time:
        raise CliError("at most one of `sinceTime` or `sinceSeconds` may be specified")
    if args.since is not None:
        params["sinceSeconds"] = str(max(args.since, 1))
    elif args.since_time:
        params["sinceTime"] = args.since_time
    if args.limit_bytes > 0:
        params["limitBytes"] = str(args.limit_bytes)
    async for chunk in s.client.stream(s.client.item_path(PODS, name, s.namespace, "log"), params=params):
        _write(s.out, chunk)
    return 0


# --- exec --------------------------------------------------------------------------------------------------

def _stdin_reader(stream: IO[str], loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes]) -> None:
    """Read ``stream`` in a daemon thread (a thread blocked on a terminal must not hold the exit), putting
    chunks on ``queue`` and b"" at its end."""
    def put(data: bytes) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, data)

    def read_fd(fd: int) -> None:
        try:
            while data := os.read(fd, 32 * 1024):
                put(data)
        except OSError:
            pass
        put(b"")

    def read_text() -> None:
        data = stream.read()
        if data:
            put(data.encode())
        put(b"")

    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        threading.Thread(target=read_text, daemon=True).start()
    else:
        threading.Thread(target=read_fd, args=(fd,), daemon=True).start()


def _terminal_size() -> bytes:
    size = os.get_terminal_size(sys.stdout.fileno())
    return json.dumps({"Width": size.columns, "Height": size.lines}).encode()


def exit_code_of(status: dict[str, Any], err: IO[str]) -> int:
    """The exit code the final Status carries (kubectl's), printing a failure that is not one."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                with contextlib.suppress(ValueError):
                    code = int(cause.get("message", ""))
                    err.write(f"command terminated with exit code {code}\n")
                    return code
    err.write(f"error: {status.get('message') or 'the command failed'}\n")
    return 1


async def exec_command(args: argparse.Namespace, s: Session) -> int:
    command = exec_command_line(args)
    if not command:
        raise CliError("you must specify at least one command for the container")
    name = pod_name(args.pod)
    pod = await s.client.get(PODS, name, s.namespace)
    phase = (pod.get("status") or {}).get("phase", "")
    if phase in ("Succeeded", "Failed"):
        raise CliError(f"cannot exec into a container in a completed pod; current phase is {phase}")
    tty = bool(args.tty and args.stdin and s.stdin.isatty())
    if args.tty and not tty:
        s.err.write("Unable to use a TTY - input is not a terminal or the right kind of file\n")
    params = [("command", c) for c in command]
    params += [("container", choose_container(pod, args.container, s.err)), ("stdout", "true")]
    params += [("stderr", "false" if tty else "true"), ("stdin", "true" if args.stdin else "false")]
    if tty:
        params.append(("tty", "true"))
    path = s.client.item_path(PODS, name, s.namespace, "exec")
    async with _ws_session(s.client) as session:
        ws = await _connect(session, s.client, path, params, (EXEC_PROTOCOL,))
        async with ws:
            with _raw_terminal(s.stdin if tty else None):
                return await _exec_streams(ws, s, stdin=args.stdin, tty=tty)


async def _exec_streams(ws: aiohttp.ClientWebSocketResponse, s: Session, *, stdin: bool, tty: bool) -> int:
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    if stdin:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        _stdin_reader(s.stdin, loop, queue)

        async def send_stdin() -> None:
            while data := await queue.get():
                await ws.send_bytes(b"\x00" + data)
            await ws.send_bytes(b"\xff\x00")  # v5: no more stdin

        tasks.append(asyncio.ensure_future(send_stdin()))
    if tty:
        def resized() -> None:
            tasks.append(asyncio.ensure_future(ws.send_bytes(b"\x04" + _terminal_size())))

        resized()
        loop.add_signal_handler(signal.SIGWINCH, resized)
    code: int | None = None
    try:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel == 1 and payload:
                _write(s.out, payload)
            elif channel == 2 and payload:
                _write(s.err, payload)
            elif channel == 3 and payload:
                code = exit_code_of(json.loads(payload), s.err)
    finally:
        if tty:
            loop.remove_signal_handler(signal.SIGWINCH)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if code is None:
        raise CliError("the connection to the container ended without an exit status")
    return code


@contextlib.contextmanager
def _raw_terminal(stream: IO[str] | None) -> Any:
    """The terminal in raw mode for the life of a TTY exec (every key goes to the container)."""
    if stream is None:
        yield
        return
    import termios
    import tty as tty_module

    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty_module.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


# --- port-forward ------------------------------------------------------------------------------------------

def parse_port_pair(text: str) -> tuple[int, int]:
    """``REMOTE``, ``LOCAL:REMOTE`` or ``:REMOTE`` (a free local port, also written ``0:REMOTE``)."""
    local, sep, remote = text.rpartition(":")
    try:
        remote_port = int(remote)
        local_port = int(local) if local else (0 if sep else remote_port)
    except ValueError:
        raise CliError(f"invalid port specification {text!r}") from None
    if not 0 < remote_port < 65536 or not 0 <= local_port < 65536:
        raise CliError(f"invalid port specification {text!r}")
    return local_port, remote_port


async def port_forward(args: argparse.Namespace, s: Session, *,
                       ready: Callable[[list[tuple[str, int, int]]], None] | None = None) -> int:
    """Listen and forward until cancelled. ``ready`` gets (address, local port, remote port) per listener."""
    name = pod_name(args.pod)
    pairs = [parse_port_pair(p) for p in args.ports]
    pod = await s.client.get(PODS, name, s.namespace)
    phase = (pod.get("status") or {}).get("phase", "")
    if phase != "Running":
        raise CliError(f"unable to forward port because pod is not running. Current status={phase}")
    addresses = ["127.0.0.1" if a.strip() == "localhost" else a.strip() for a in args.address.split(",")]
    path = s.client.item_path(PODS, name, s.namespace, "portforward")
    listening: list[tuple[str, int, int]] = []
    async with _ws_session(s.client) as session:
        servers: list[asyncio.Server] = []
        try:
            for local, remote in pairs:
                for address in addresses:
                    server = await asyncio.start_server(
                        partial(_forward_connection, session, s, path, remote), address, local)
                    servers.append(server)
                    bound = int(server.sockets[0].getsockname()[1])
                    local = local or bound  # other addresses share the port picked for the first one
                    listening.append((address, bound, remote))
                    s.out.write(f"Forwarding from {address}:{bound} -> {remote}\n")
            s.out.flush()
            if ready is not None:
                ready(listening)
            await asyncio.Event().wait()
        finally:
            for server in servers:
                server.close()
    return 0


async def _forward_connection(session: aiohttp.ClientSession, s: Session, path: str, remote: int,
                              reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    local = writer.get_extra_info("sockname")[1]
    s.out.write(f"Handling connection for {local}\n")
    s.out.flush()
    try:
        ws = await _connect(session, s.client, path, [("ports", str(remote))], PORT_FORWARD_PROTOCOLS)
    except ApiException as e:  # reported; only this connection is dropped
        s.err.write(api_error_text(e) + "\n")
        writer.close()
        return
    except (CliError, TransportError) as e:
        s.err.write(f"error: {e}\n")
        writer.close()
        return
    protocol = ws.protocol
    upload = asyncio.ensure_future(_upload(reader, ws, v5=protocol == "v5.channel.k8s.io"))
    try:
        started = {0: False, 1: False}
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel in started and not started[channel]:
                started[channel] = True  # the first message of each channel names the port
                continue
            if channel == 0 and payload:
                writer.write(payload)
                await writer.drain()
            elif channel == 1 and payload:
                message = payload.decode(errors="replace")
                s.err.write(f"error: an error occurred forwarding {local} -> {remote}: {message}\n")
    except ConnectionError:
        pass
    finally:
        upload.cancel()
        await asyncio.gather(upload, return_exceptions=True)
        await ws.close()
        writer.close()


async def _upload(reader: asyncio.StreamReader, ws: aiohttp.ClientWebSocketResponse, *, v5: bool) -> None:
    while data := await reader.read(32 * 1024):
        await ws.send_bytes(b"\x00" + data)
    if v5:
        await ws.send_bytes(b"\xff\x00")  # half-close towards the pod
