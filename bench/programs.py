"""The programs every figure runs, and how each language's interpreter runs them.

Standard library only: the peer workers import this from their own virtualenv.
"""

from __future__ import annotations

from dataclasses import dataclass

HELLO_OUTPUT = b"hello, world\n"
BENCH_LABEL = "io.codebeaker.bench"
ENTRYPOINT = "{entrypoint}"  # as in the runtimes' spec.toml


@dataclass(frozen=True)
class Program:
    language: str  # CodeBeaker's language id
    image: str  # our runtime image
    file_name: str  # the file the program is written to
    interpreter: str  # the command inside the image
    hello: str  # prints exactly HELLO_OUTPUT
    timestamp: str  # prints its own wall-clock time in integer nanoseconds
    # How CodeBeaker runs a program in this image (its spec.toml `run`), so that
    # every contender inside the image runs the interpreter the same way.
    run: tuple[str, ...] = ()

    def command(self, path: str) -> list[str]:
        run = self.run or (self.interpreter, ENTRYPOINT)
        return [part.replace(ENTRYPOINT, path) for part in run]

    def inline_command(self) -> list[str]:
        """`command`, with `hello` given on the command line instead of in a file."""
        flag = "-c" if self.interpreter == "python3" else "-e"
        argv: list[str] = []
        for part in self.run or (self.interpreter, ENTRYPOINT):
            argv += [flag, self.hello] if part == ENTRYPOINT else [part]
        return argv


PROGRAMS: dict[str, Program] = {
    "python": Program(
        language="python",
        image="codebeaker/python",
        file_name="main.py",
        interpreter="python3",
        hello='print("hello, world")\n',
        timestamp="import sys, time\nsys.stdout.write(f'{time.time_ns()}\\n')\n",
    ),
    "javascript": Program(
        language="javascript",
        image="codebeaker/javascript",
        file_name="main.js",
        interpreter="node",
        hello='console.log("hello, world")\n',
        # timeOrigin is anchored to the wall clock once, then advanced by the
        # monotonic high-resolution timer: sub-millisecond, unlike Date.now().
        # process.stdout is created lazily (a few ms on first use): touch it before
        # reading the clock, so the figure is CodeBeaker's latency, not Node's set-up.
        timestamp=(
            "const out = process.stdout;\n"
            "const ms = performance.timeOrigin + performance.now();\n"
            "out.write((BigInt(Math.floor(ms * 1000)) * 1000n).toString() + '\\n');\n"
        ),
    ),
}
