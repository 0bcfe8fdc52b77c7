"""What a person at a terminal sees: the live status line redrawn in place, and progress bars
for large transfers. stderr is a real pseudo-terminal here."""

import os
import pty
import select
import subprocess
import threading

from .conftest import cli_env
from .live import BIN, wait_for


def on_terminal(args, env) -> tuple[subprocess.Popen, bytearray]:
    """Run kolejka-client with stderr on a pseudo-terminal; collect what it draws there.

    We keep the terminal's other end open until everything is read: Linux drops what is left
    in a terminal once its last writer closes.
    """
    terminal, stderr = pty.openpty()
    process = subprocess.Popen(
        [str(BIN / "kolejka-client"), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    drawn = bytearray()
    done = threading.Event()

    def collect() -> None:
        while True:
            ready, _, _ = select.select([terminal], [], [], 0.1)
            if ready:
                drawn.extend(os.read(terminal, 4096))
            elif done.is_set():
                return

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()

    def finished() -> int:
        code = process.wait(timeout=120)
        done.set()
        reader.join(timeout=30)
        os.close(stderr)
        os.close(terminal)
        return code

    process.finished = finished
    return process, drawn


def test_it_redraws_the_status_line_in_place(server, home, foreman, task_dir, tmp_path):
    process, drawn = on_terminal(
        ["execute", str(task_dir), str(tmp_path / "r")], cli_env(server, home)
    )
    wait_for(lambda: b"queued" in drawn, "the status line")
    # The result waits until the line has shown the running state, which it would otherwise race.
    foreman.run(
        tmp_path / "node",
        started=lambda task: wait_for(lambda: b"running on" in drawn, "the running state"),
    )
    assert process.finished() == 0
    text = drawn.decode()
    assert "\r\x1b[K" in text
    assert ": queued → " in text and f"running on {foreman.name} → done" in text


def test_it_shows_progress_bars_for_large_transfers(server, home, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 8)
    env = cli_env(server, home)
    process, drawn = on_terminal(["blob", "put", str(big)], env)
    assert process.finished() == 0
    reference = process.stdout.read().decode().strip()
    assert b"8.00M" in drawn and b"upload big.bin" in drawn
    process, drawn = on_terminal(["blob", "get", reference, str(tmp_path / "copy.bin")], env)
    assert process.finished() == 0
    assert b"download copy.bin" in drawn
    assert (tmp_path / "copy.bin").read_bytes() == big.read_bytes()


def test_it_shows_no_progress_bar_when_quiet(server, home, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 8)
    process, drawn = on_terminal(["blob", "put", "--quiet", str(big)], cli_env(server, home))
    assert process.finished() == 0
    assert process.stdout.read() == b""
    assert drawn == b""
