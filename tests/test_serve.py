"""`slmops serve` without a browser: bad ports and hosts (one sentence, exit 2), the loopback
default, --allow-remote's warning, requests from other sites refused, a clean Ctrl+C, and the
wizard's start left free of textual_serve. The browser itself: tests/tui/test_browser.py."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui.cli import main

ROOT = Path(__file__).resolve().parent.parent
CAP_S = 120  # guards against a hang only


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_line_exit_2(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert captured.out == ""
    return err


def test_help_has_an_example(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "example: slmops serve" in out and "--allow-remote" in out


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_a_port_out_of_range_is_one_sentence(port: str, capsys) -> None:
    err = one_line_exit_2(["serve", "--port", port], capsys)
    assert f"Port {port} is out of range" in err and "1 to 65535" in err


def test_a_port_in_use_is_one_sentence(capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = one_line_exit_2(["serve", "--port", str(port)], capsys)
    assert f"Port {port} on 127.0.0.1 is already in use" in err and "--port" in err


@pytest.mark.parametrize("host", ["192.0.2.1", "no-such-host.invalid"])  # TEST-NET-1; a reserved name
def test_a_host_that_is_not_this_machine_is_one_sentence(host: str, capsys) -> None:
    err = one_line_exit_2(["serve", "--host", host, "--allow-remote", "--port", str(free_port())], capsys)
    assert f"{host} is not an address of this machine" in err


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_another_host_needs_allow_remote(host: str, capsys) -> None:
    err = one_line_exit_2(["serve", "--host", host, "--port", str(free_port())], capsys)
    assert "--allow-remote" in err and "convert and deploy models" in err


def test_the_wizard_start_does_not_import_the_web_server() -> None:
    code = ("import sys, tui.cli, tui.app; tui.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual_serve', 'aiohttp')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=CAP_S, check=True).stdout
    assert out.strip() == "[]"


def start_serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path, Path]:
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "tui", "serve", *args], cwd=ROOT,
                                   env=dict(os.environ, SLMOPS_HOME=str(tmp_path / "home")),
                                   stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    started = time.monotonic()
    while "http://" not in out.read_text():
        assert process.poll() is None, err.read_text()
        assert time.monotonic() - started < CAP_S, "slmops serve printed no address"
        time.sleep(0.05)
    return process, out, err


@pytest.fixture
def stop_after() -> Iterator[list[subprocess.Popen]]:
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def request(port: int, path: str = "/", **headers: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CAP_S)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


WEBSOCKET = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def test_loopback_serving_refuses_other_sites_and_stops_on_ctrl_c(tmp_path: Path, stop_after) -> None:
    port = free_port()
    process, out, err = start_serve(tmp_path, "--port", str(port))
    stop_after.append(process)
    assert f"http://127.0.0.1:{port}/" in out.read_text()

    status, page = request(port)
    assert status == 200 and f"ws://127.0.0.1:{port}/ws" in page
    assert "fonts.googleapis.com" not in page  # nothing fetched from the internet
    # A site whose name points at 127.0.0.1 (DNS rebinding), and a page from another origin
    # opening the websocket: both refused before any wizard starts.
    status, text = request(port, Host=f"evil.example:{port}")
    assert status == 403 and f"http://127.0.0.1:{port}/" in text  # says where to open it
    assert request(port, "/ws", Host=f"127.0.0.1:{port}", Origin="http://evil.example", **WEBSOCKET)[0] == 403

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=CAP_S) == 0
    errors = err.read_text()
    assert "Traceback" not in errors and "stopped." in errors, errors


def test_allow_remote_warns_in_one_line(tmp_path: Path, stop_after) -> None:
    port = free_port()
    process, out, err = start_serve(tmp_path, "--host", "0.0.0.0", "--allow-remote", "--port", str(port))
    stop_after.append(process)
    warning = err.read_text().strip().splitlines()
    assert len(warning) == 1 and "anyone who can reach port" in warning[0], warning
    assert f"http://127.0.0.1:{port}/" in out.read_text()
    # Remote mode answers to the machine's other names too.
    assert request(port, Host=f"lab-machine.example:{port}")[0] == 200
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=CAP_S) == 0
