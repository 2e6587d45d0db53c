"""CodeBeaker's Python kernel: one interpreter that runs a session's code cells.

Started inside the sandbox as `python3 -u -c <this source> TOKEN`; speaks
PROTOCOL.md (beside this file). Stand-alone on purpose: the standard library
only (the image's Python 3.11), nothing of codebeaker, no other file.

File descriptors: the real stdout is kept as a private duplicate for messages,
stdin as a private duplicate for requests; fd 0 becomes /dev/null (a cell that
reads stdin gets EOF instead of the next request), fds 1 and 2 become pipes that
two threads read and send as `out`/`err` of the running cell. While no cell
runs the threads do not read: what a leftover thread or child writes then waits
in the pipe and arrives as the next cell's output.
"""

from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import fcntl
import io
import json
import linecache
import os
import re
import select
import signal
import struct
import sys
import termios
import threading
import traceback
import types
from collections.abc import Coroutine
from typing import Any

KERNEL_GLOBALS = globals()
CELL_PREFIX = "<cell "  # a cell's code has the file name "<cell N>", N counted from 1
CHUNK = 65536  # at most this many bytes per `out`/`err` message
CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect
TOKEN = re.compile(r"[0-9a-f]{32}")


class Channel:
    """The kernel's real stdout: every message is one write, under one lock."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()

    def send(self, token: str, message: dict[str, str]) -> None:
        body = json.dumps(message, separators=(",", ":"))
        frame = b"\n\x1e" + token.encode("ascii") + b"\x1f" + body.encode("ascii") + b"\n"
        with self.lock:
            view = memoryview(frame)
            try:
                while view:  # more than one write only after a signal cut one short
                    view = view[os.write(self.fd, view) :]
            except OSError:
                os._exit(1)  # the server is gone: nobody can hear anything more


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def pending_bytes(fd: int) -> int:
    (count,) = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))
    return int(count)


class Stream:
    """One of the pipes that replaced fds 1 and 2, and the thread that reads it.

    The thread reads only while a cell runs (`token` set), and reads and sends
    under `cond`; `consumed` counts what it read, so that `finish` can wait for
    exactly the bytes that were in the pipe when the cell ended.
    """

    def __init__(self, target: int, kind: str, channel: Channel) -> None:
        read_end, write_end = os.pipe()
        os.dup2(write_end, target)
        # The private write end stays open: the pipe never reports a hang-up,
        # even if a cell closes fd 1 or 2.
        self.writer = write_end
        self.fd = read_end
        self.kind = kind
        self.channel = channel
        self.cond = threading.Condition()
        self.token: str | None = None
        self.consumed = 0
        threading.Thread(target=self.pump, name=f"kernel-{kind}", daemon=True).start()

    def pump(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while True:
            with self.cond:
                while self.token is None:
                    self.cond.wait()
            poller.poll()
            with self.cond:
                if self.token is None:
                    continue
                data = os.read(self.fd, CHUNK)
                self.consumed += len(data)
                self.channel.send(self.token, {"k": self.kind, "data": encoded(data)})
                self.cond.notify_all()

    def start(self, token: str) -> None:
        with self.cond:
            self.token = token
            self.cond.notify_all()

    def finish(self) -> None:
        """Send what is in the pipe now as the cell's output, then stop reading."""
        with self.cond:
            target = self.consumed + pending_bytes(self.fd)
            while self.consumed < target:
                self.cond.wait()
            self.token = None


def flush() -> None:
    """Python's buffers of sys.stdout and sys.stderr, into the pipes."""
    for name in ("stdout", "stderr"):
        with contextlib.suppress(Exception):  # a cell closed or replaced it
            getattr(sys, name).flush()


def forget_half_imported() -> None:
    """Drop the submodules whose package is not imported: what an import the cell's
    error or a SIGINT cut short left behind. Else the next import of that package
    runs its __init__ again over them, and finds its submodules' names unbound."""
    for name in list(sys.modules):
        parent = name.rpartition(".")[0]
        while parent and parent in sys.modules:
            parent = parent.rpartition(".")[0]
        if parent:
            del sys.modules[name]


def in_cell(frame: types.FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith(CELL_PREFIX):
            return True
        frame = frame.f_back
    return False


def cell_traceback(error: BaseException) -> str:
    """The error as Python prints it, from the first frame of a cell on (from the first
    frame at all when there is none: a figure's drawing), without the kernel's frames."""
    frames: list[types.TracebackType] = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    start = next(
        (i for i, t in enumerate(frames) if t.tb_frame.f_code.co_filename.startswith(CELL_PREFIX)),
        0,
    )
    kept = [t for t in frames[start:] if t.tb_frame.f_globals is not KERNEL_GLOBALS]
    if not kept:
        return "".join(traceback.format_exception(type(error), error, None))
    for outer, inner in zip(kept, [*kept[1:], None], strict=True):
        outer.tb_next = inner  # relinked in place: the error is the kernel's to show
    return "".join(traceback.format_exception(type(error), error, kept[0]))


def text(value: str) -> str:
    return encoded(value.encode("utf-8", "backslashreplace"))


def silenced(code: str, last: ast.expr) -> bool:
    """A trailing `;` after the last expression hides its value (as in IPython)."""
    if last.end_lineno is None or last.end_col_offset is None:
        return False
    line = code.splitlines()[last.end_lineno - 1].encode("utf-8")
    rest = line[last.end_col_offset :].decode("utf-8", "replace").lstrip()
    return rest.startswith(";")


class Kernel:
    def __init__(self, channel: Channel, streams: list[Stream]) -> None:
        self.channel = channel
        self.streams = streams
        self.count = 0
        self.awaiting = False  # inside the event loop of a cell's top-level `await`
        self.loop: Any = None  # that loop (asyncio is imported by the first such cell)
        self.module = types.ModuleType("__main__")
        self.module.__dict__["__builtins__"] = builtins
        self.namespace: dict[str, Any] = self.module.__dict__
        self.own: types.ModuleType | None = None

    def on_sigint(self, signum: int, frame: types.FrameType | None) -> None:
        # Interrupt only the cell's code: a SIGINT while the kernel reads the
        # next request, drains output or sends messages changes nothing.
        if self.awaiting or in_cell(frame):
            raise KeyboardInterrupt

    def run(self, token: str, code: str) -> None:
        self.count += 1
        filename = f"{CELL_PREFIX}{self.count}>"
        # Registered so that tracebacks, inspect and warnings show the cell's lines.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        for stream in self.streams:
            stream.start(token)
        rich: list[dict[str, str]] = []  # display and traceback messages, sent after the output
        done: dict[str, str] = {"k": "done", "status": "ok"}
        try:
            value = self.execute(code, filename)
            if value is not None:
                rich.append({"k": "display", "mime": "text/plain", "data": text(repr(value))})
                html = self.html(value, rich)
                if html is not None:
                    rich.append({"k": "display", "mime": "text/html", "data": text(html)})
        except KeyboardInterrupt as error:
            rich.append({"k": "err", "data": text(cell_traceback(error))})
            done = {"k": "done", "status": "interrupted"}
        except BaseException as error:  # SystemExit too: the kernel lives on
            rich.append({"k": "err", "data": text(cell_traceback(error))})
            done = {
                "k": "done",
                "status": "error",
                "ename": type(error).__name__,
                "evalue": self.describe(error),
            }
        if self.figures(rich, render=done["status"] != "interrupted"):
            done = {"k": "done", "status": "interrupted"}
        if done["status"] != "ok":
            forget_half_imported()
        flush()
        for stream in self.streams:
            stream.finish()
        for message in rich:
            self.channel.send(token, message)
        self.channel.send(token, done)

    def execute(self, code: str, filename: str) -> object:
        """Run the cell; the value of its last statement when that is an expression."""
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        tree = compile(code, filename, "exec", flags | ast.PyCF_ONLY_AST, dont_inherit=True)
        last: ast.expr | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = tree.body.pop().value
        self.evaluate(compile(tree, filename, "exec", flags, dont_inherit=True))
        if last is None:
            return None
        value = self.evaluate(
            compile(ast.Expression(last), filename, "eval", flags, dont_inherit=True)
        )
        return None if silenced(code, last) else value

    def evaluate(self, compiled: types.CodeType) -> object:
        if not compiled.co_flags & CO_COROUTINE:
            return eval(compiled, self.namespace)
        coroutine: Coroutine[Any, Any, object] = eval(compiled, self.namespace)
        if self.loop is None:
            import asyncio

            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
        loop = self.loop
        task = loop.create_task(coroutine)
        task.add_done_callback(lambda _: loop.stop())
        self.awaiting = True
        try:
            # Not run_until_complete: a SIGINT between a task's end and the loop's
            # stop leaves that stop scheduled, and it ends the next cell's run early.
            while not task.done():
                loop.run_forever()
            result: object = task.result()
            return result
        except BaseException:
            if not task.done():
                task.cancel()  # takes effect when a later cell runs the loop
            raise
        finally:
            self.awaiting = False

    def html(self, value: object, rich: list[dict[str, str]]) -> str | None:
        """`value._repr_html_()` if it has one; its failure is shown, the cell stays ok."""
        if isinstance(value, type):
            return None
        try:
            method = getattr(value, "_repr_html_", None)
            if not callable(method):
                return None
            html = method()
        except Exception as error:
            rich.append({"k": "err", "data": text(cell_traceback(error))})
            return None
        return html if isinstance(html, str) else None

    def figures(self, rich: list[dict[str, str]], render: bool) -> bool:
        """Every open matplotlib figure as PNG (only if the cell imported pyplot),
        then close them all; True when a SIGINT interrupted that."""
        pyplot: Any = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return False
        interrupted = False
        try:
            for number in pyplot.get_fignums() if render else []:
                image = io.BytesIO()
                try:
                    pyplot.figure(number).savefig(image, format="png", bbox_inches="tight")
                except Exception as error:
                    rich.append({"k": "err", "data": text(cell_traceback(error))})
                    continue
                rich.append(
                    {"k": "display", "mime": "image/png", "data": encoded(image.getvalue())}
                )
        except KeyboardInterrupt:
            interrupted = True
        finally:
            with contextlib.suppress(Exception):
                pyplot.close("all")
        return interrupted

    @staticmethod
    def describe(error: BaseException) -> str:
        try:
            return str(error)
        except Exception:
            return f"<{type(error).__name__} whose str() failed>"


def serve(kernel: Kernel, requests: io.BufferedReader, diagnostics: int) -> None:
    """Run the cells of the requests, one after the other, until stdin's EOF."""
    for line in requests:
        try:
            request = json.loads(line)
            token, code = request["cell"], request["code"]
            if not (isinstance(token, str) and TOKEN.fullmatch(token) and isinstance(code, str)):
                raise ValueError("not a cell request")
        except (ValueError, KeyError, TypeError) as error:
            note = f"kernel: request ignored ({error}): {line[:200]!r}\n"
            os.write(diagnostics, note.encode())
            continue
        try:
            kernel.run(token, code)
        except BaseException as error:  # the kernel's own fault: the cell must still end
            os.write(diagnostics, f"kernel: {traceback.format_exc()}".encode())
            failure = {"k": "done", "status": "error", "ename": "KernelError", "evalue": str(error)}
            kernel.channel.send(token, failure)


def main() -> int:
    if len(sys.argv) != 2 or not TOKEN.fullmatch(sys.argv[1]):
        sys.stderr.write("usage: python3 -u -c <kernel.py> TOKEN (32 lowercase hex digits)\n")
        return 2
    startup = sys.argv[1]
    sys.argv = [""]
    channel = Channel(os.dup(1))
    diagnostics = os.dup(2)
    with open(os.dup(0), "rb") as requests:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        kernel = Kernel(channel, [Stream(1, "out", channel), Stream(2, "err", channel)])
        signal.signal(signal.SIGINT, kernel.on_sigint)
        kernel.own = sys.modules["__main__"]  # keeps this module (KERNEL_GLOBALS) alive
        sys.modules["__main__"] = kernel.module
        channel.send(startup, {"k": "ready"})
        serve(kernel, requests, diagnostics)
    flush()
    os._exit(0)  # at once: a thread a cell left running must not keep the kernel alive


if __name__ == "__main__":
    sys.exit(main())
