"""``slmops serve``: the same Textual wizard in a browser tab (textual-serve), for the projector and
lab machines without a usable terminal.

Every browser connection runs its own wizard process (``python -m tui.serve``) with the same
SLMOPS_HOME. Loopback only unless --allow-remote. textual_serve and aiohttp are imported only when
serving, so the wizard's own start stays as fast as before.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

import psutil

from tui import exit_codes
from wizard_steps.core import i18n
from wizard_steps.core.errors import WizardError
from wizard_steps.core.i18n import _
from wizard_steps.road.state import WizardState

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
LOOPBACK_NAMES = ("localhost",)
STOP_GRACE_S = 10.0  # how long each wizard process gets to quit when the server stops
# The page template links a web font from the internet: offline, a stylesheet that never loads
# blocks the page, and the font is only a nicety (the terminal falls back to a local monospace).
WEB_FONT_LINK = re.compile(r'<link[^>]*href="https://fonts\.googleapis\.com[^>]*>')


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``slmops serve`` (called from tui.cli)."""
    srv = sub.add_parser("serve", help=_("the wizard in a browser tab (projector, lab machines)"),
                         description=_("Serve the Textual wizard to a web browser: every tab runs its own "
                                       "wizard, all with the same saved state. Loopback only unless "
                                       "--allow-remote. Ctrl+C stops it."),
                         epilog=_("example: slmops serve --port 8000   (then open http://127.0.0.1:8000)"))
    srv.add_argument("--port", type=int, default=DEFAULT_PORT,
                     help=_("default {value}").format(value=DEFAULT_PORT))
    srv.add_argument("--host", default=DEFAULT_HOST,
                     help=_("address to listen on (default {value}: this machine only)").format(
                         value=DEFAULT_HOST))
    srv.add_argument("--allow-remote", action="store_true",
                     help=_("allow a host other machines can reach (they can then convert and deploy "
                            "models here)"))
    srv.set_defaults(func=cmd_serve)


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is this machine's loopback."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    addresses = [info[4][0] for info in infos]  # typeshed also allows an int (IPv6 on a build without it)
    return bool(addresses) and all(isinstance(address, str)
                                   and ipaddress.ip_address(address.split("%")[0]).is_loopback
                                   for address in addresses)


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def url_for(host: str, port: int) -> str:
    """The address to open in a browser (the loopback one when listening on every interface)."""
    if _is_unspecified(host):
        host = "::1" if ":" in host else "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def open_listener(host: str, port: int, allow_remote: bool) -> socket.socket:
    """A listening socket on host:port, or a WizardError saying what is wrong in one sentence."""
    if not 1 <= port <= 65535:
        raise WizardError(_("Port {port} is out of range.").format(port=port),
                          _("Choose a port from 1 to 65535, e.g. --port {default}.").format(default=DEFAULT_PORT))
    if not allow_remote and not is_loopback(host):
        raise WizardError(_("{host} can be reached from other machines, and anyone who reaches the wizard "
                            "can convert and deploy models on this one.").format(host=host),
                          _("Add --allow-remote if that is what you want, or leave --host out."))
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise not_here(host) from exc
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "posix":  # lets a restart reuse the port at once (on Windows it would share it)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise bind_error(exc, host, port) from exc
    sock.setblocking(False)
    return sock


def not_here(host: str) -> WizardError:
    return WizardError(_("{host} is not an address of this machine.").format(host=host),
                       _("Use one of its own addresses, or leave --host out for {default}.").format(
                           default=DEFAULT_HOST))


def bind_error(exc: OSError, host: str, port: int) -> WizardError:
    """One sentence for a failed bind: port taken, address not ours, port reserved."""
    code = exc.errno or getattr(exc, "winerror", None)
    if code in (errno.EADDRINUSE, 10048):
        return WizardError(_("Port {port} on {host} is already in use.").format(port=port, host=host),
                           _("Stop what uses it or choose another port, e.g. --port {other}.").format(
                               other=port + 1 if port < 65535 else DEFAULT_PORT))
    if code in (errno.EADDRNOTAVAIL, 10049):
        return not_here(host)
    if code in (errno.EACCES, 10013):
        return WizardError(_("Port {port} needs administrator rights on this machine.").format(port=port),
                           _("Choose a port above 1023, e.g. --port {default}.").format(default=DEFAULT_PORT))
    return WizardError(_("Cannot listen on {host} port {port}: {reason}.").format(
        host=host, port=port, reason=exc.strerror or exc), _("Choose another --host or --port."))


def app_command(lang: str) -> str:
    """The shell command textual-serve runs for each browser connection: the Textual wizard."""
    args = [sys.executable, "-m", "tui.serve", "--lang", lang]
    if os.name == "nt":
        return subprocess.list2cmdline(args)
    return "exec " + shlex.join(args)  # exec: the wizard is the shell's own process, ended directly


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl+C; exit 2 with one sentence for a bad host or port."""
    sock = open_listener(args.host, args.port, args.allow_remote)
    if not is_loopback(args.host):
        print("slmops: " + _("warning: anyone who can reach port {port} on {host} can convert and deploy "
                             "models on this machine.").format(port=args.port, host=args.host),
              file=sys.stderr, flush=True)
    return run_server(sock, app_command(i18n.current_language()), url_for(args.host, args.port),
                      loopback_only=is_loopback(args.host))


def run_server(sock: socket.socket, command: str, url: str, loopback_only: bool) -> int:
    """Serve on ``sock`` until Ctrl+C (or SIGTERM), then end every wizard process it started."""

    try:
        asyncio.run(_serve(sock, command, url, loopback_only))
    except KeyboardInterrupt:
        pass
    finally:
        end_children()
    print("slmops: " + _("stopped."), file=sys.stderr, flush=True)
    return exit_codes.OK


async def _serve(sock: socket.socket, command: str, url: str, loopback_only: bool) -> None:
    from aiohttp import web  # textual_serve and aiohttp: only when serving

    server = make_server(command, loopback_only, url)
    runner = web.AppRunner(await server._make_app(), handle_signals=False, access_log=None,
                           shutdown_timeout=2.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError, AttributeError):  # not on Windows: Ctrl+C is enough
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(_("Serving the slmops wizard at {url} (each browser tab runs its own wizard). "
            "Press Ctrl+C to stop.").format(url=url), flush=True)
    try:
        await stop.wait()
    finally:
        await server.end_sessions()
        await runner.cleanup()


def make_server(command: str, loopback_only: bool, url: str):  # -> textual_serve.server.Server
    """textual-serve's Server, with the page and the websocket guarded against other sites."""

    import aiohttp_jinja2
    from aiohttp import web
    from textual_serve.app_service import AppService
    from textual_serve.server import Server, to_int

    @web.middleware
    async def guard(request: web.Request, handler):
        # Loopback mode answers only to loopback names (a web page on another site cannot reach the
        # wizard by pointing its own name at 127.0.0.1), and the websocket only to its own page.
        if loopback_only and not literal_loopback(request.url.host or ""):
            raise web.HTTPForbidden(text=_("Open the wizard at {url} on this machine.").format(url=url))
        origin = request.headers.get("Origin")
        if request.path == "/ws" and origin and urlsplit(origin).netloc.lower() != request.host.lower():
            raise web.HTTPForbidden(text=_("The wizard answers only to its own page."))
        return await handler(request)

    class WizardServer(Server):
        def __init__(self) -> None:
            super().__init__(command, title="slmops")
            self.sessions: dict[asyncio.Task, web.WebSocketResponse] = {}
            self.stopping: set[asyncio.Future] = set()

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(guard)
            return app

        async def on_startup(self, app: web.Application) -> None:
            """Quiet: cmd_serve prints the address itself (textual-serve prints a banner)."""

        async def handle_index(self, request: web.Request) -> web.Response:
            """The page, its addresses taken from the request (so localhost, 127.0.0.1 and the
            machine's own name all work), without the web-font link."""
            websocket = "wss" if request.scheme == "https" else "ws"
            context = {"font_size": to_int(request.query.get("fontsize", "16"), 16),
                       "app_websocket_url": f"{websocket}://{request.host}/ws",
                       "config": {"static": {"url": f"{request.scheme}://{request.host}/static/"}},
                       "application": {"name": self.title}}
            response = aiohttp_jinja2.render_template("app_index.html", request, context)
            response.text = WEB_FONT_LINK.sub("", response.text or "")
            return response

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            """One tab, one wizard process (textual-serve's handler, with each connection kept so
            that a stop can close it the way a closed tab does)."""
            websocket = web.WebSocketResponse(heartbeat=15)
            await websocket.prepare(request)

            async def close() -> None:  # textual-serve awaits a None; aiohttp's close returns a bool
                await websocket.close()

            session = Session(self.command, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                              close=close, download_manager=self.download_manager)
            task = asyncio.current_task()
            assert task is not None
            self.sessions[task] = websocket
            try:
                await session.start(to_int(request.query.get("width", "80"), 80),
                                    to_int(request.query.get("height", "24"), 24))
                await self._process_messages(websocket, session)
            finally:
                del self.sessions[task]
                stopping = asyncio.ensure_future(session.stop())  # kept even if this task is cancelled
                self.stopping.add(stopping)
                stopping.add_done_callback(self.stopping.discard)
                await asyncio.shield(stopping)
            return websocket

        async def end_sessions(self) -> None:
            """Close every tab's connection, wait for each wizard to exit; end the slow ones."""
            tasks = list(self.sessions)
            for websocket in list(self.sessions.values()):
                await websocket.close(message=_("slmops serve stopped.").encode())
            if tasks:
                await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            if self.stopping:
                await asyncio.wait(list(self.stopping), timeout=STOP_GRACE_S)
            if self.stopping:
                end_children()
                await asyncio.wait(list(self.stopping), timeout=STOP_GRACE_S)

    class Session(AppService):
        async def stop(self) -> None:
            """textual-serve's quit message, then wait until the process has really exited."""
            await super().stop()
            if self._process is not None:
                await self._process.wait()

    return WizardServer()


def literal_loopback(host: str) -> bool:
    """``localhost`` or a loopback address written out (no name lookup: names can be rebound)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def end_children() -> None:
    """End any wizard process still running (one that did not quit in time)."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _gone, alive = psutil.wait_procs(children, timeout=3)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def run_app(argv: Sequence[str]) -> int:
    """One browser connection's wizard: the Textual app itself, whatever its stdin is (a pipe)."""

    # Ctrl+C in the server's terminal reaches this process too; the server ends it cleanly itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="python -m tui.serve")
    parser.add_argument("--lang", choices=list(i18n.LANGUAGES))
    i18n.set_language(parser.parse_args(argv).lang)
    from tui.app import SlmopsApp

    SlmopsApp(WizardState()).run()
    return exit_codes.OK


if __name__ == "__main__":
    sys.exit(run_app(sys.argv[1:]))
