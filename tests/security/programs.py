"""Hostile programs, one entry per behaviour, in each language where it applies.

`PROGRAMS[name][language]` is the source. Probes of privilege and reach, which
report what each attempt got, live in probes.py.
"""

from __future__ import annotations

FORGED_REPORT = (
    b"exit_code=0\nsignal=0\nwall_us=1\ncpu_us=1\npeak_memory=1\noom_kills=0\n"
    b"wall_limit=0\ncpu_limit=0\nstdout_truncated=0\nstderr_truncated=0\n"
)
# What cb-supervisor and Docker's attach stream put on the wire: a started
# frame, an output frame, a clean exit report, a fatal frame, a Docker header.
FORGED_FRAMES = (
    b"S\x00\x00\x00\x00"
    + b"1\x00\x00\x00\x07forged\n"
    + b"X"
    + len(FORGED_REPORT).to_bytes(4, "big")
    + FORGED_REPORT
    + b"F\x00\x00\x00\x04fake"
    + b"\x01\x00\x00\x00\x00\x00\x00\x05hello"
)
# The smallest forgery that would pass for a clean run: an output frame and a report.
FORGED_EXIT = (
    b"1\x00\x00\x00\x07forged\n" + b"X" + len(FORGED_REPORT).to_bytes(4, "big") + FORGED_REPORT
)
# Every byte value, then malformed UTF-8: a lone continuation byte, an
# overlong form, a UTF-16 surrogate, a code point past U+10FFFF, a cut sequence.
BINARY = bytes(range(256)) + b"\x80\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82"

PROGRAMS: dict[str, dict[str, str]] = {
    # ---------------------------------------------------------------- benign
    "hello": {
        "python": 'print("hello, world")\n',
        "javascript": 'console.log("hello, world");\n',
    },
    "hostname": {  # the container id's prefix, then a long sleep
        "python": (
            "import socket, time\nprint(socket.gethostname(), flush=True)\ntime.sleep(3600)\n"
        ),
    },
    "echo_args": {  # argv, one variable and its own path, as UTF-8 JSON
        "python": (
            "import json, os, sys\n"
            "print(json.dumps([sys.argv[1:], os.environ.get('ODD'), __file__]))\n"
        ),
    },
    # ---------------------------------------------------------------- time
    "spin": {
        "python": "while True:\n    pass\n",
        "javascript": "for (;;) {}\n",
    },
    "spin_many": {  # four busy processes: the sandbox, not one process, must be charged
        "python": (
            "import os\n"
            "for _ in range(3):\n"
            "    if os.fork() == 0:\n"
            "        break\n"
            "while True:\n"
            "    pass\n"
        ),
        "javascript": (
            "const { spawn } = require('child_process');\n"
            "for (let i = 0; i < 3; i++) {\n"
            "  spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });\n"
            "}\n"
            "for (;;) {}\n"
        ),
    },
    "spin_relay": {  # short-lived busy children, one after another, each reaped
        "python": (
            "import os, time\n"
            "def spin():\n"
            "    end = time.process_time() + 0.2\n"
            "    while time.process_time() < end:\n"
            "        pass\n"
            "    os._exit(0)\n"
            "while True:\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        spin()\n"
            "    os.waitpid(pid, 0)\n"
        ),
        "javascript": (
            "const { spawnSync } = require('child_process');\n"
            "const spin = 'const end = Date.now() + 200; while (Date.now() < end) {}';\n"
            "for (;;) spawnSync(process.execPath, ['-e', spin]);\n"
        ),
    },
    "spin_orphans": {  # busy grandchildren, orphaned at once: PID 1 reaps them
        "python": (
            "import os, time\n"
            "while True:\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        if os.fork() == 0:\n"
            "            end = time.process_time() + 0.2\n"
            "            while time.process_time() < end:\n"
            "                pass\n"
            "        os._exit(0)\n"
            "    os.waitpid(pid, 0)\n"
            "    time.sleep(0.2)\n"
        ),
    },
    "sleep_forever": {
        "python": "import time\nprint('up', flush=True)\nwhile True:\n    time.sleep(3600)\n",
        "javascript": "console.log('up');\nsetInterval(() => {}, 1 << 30);\n",
    },
    "self_stop": {
        "python": (
            "import os, signal\n"
            "print('up', flush=True)\n"
            "os.kill(os.getpid(), signal.SIGSTOP)\n"
            "print('resumed')\n"
        ),
        "javascript": "console.log('up');\nprocess.kill(process.pid, 'SIGSTOP');\n"
        "console.log('resumed');\n",
    },
    "ignore_term": {
        "python": (
            "import signal, time\n"
            "for name in ('SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGALRM'):\n"
            "    signal.signal(getattr(signal, name), signal.SIG_IGN)\n"
            "print('up', flush=True)\n"
            "while True:\n"
            "    time.sleep(3600)\n"
        ),
        "javascript": (
            "for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1']) {\n"
            "  process.on(s, () => {});\n"
            "}\n"
            "console.log('up');\n"
            "setInterval(() => {}, 1 << 30);\n"
        ),
    },
    # ---------------------------------------------------------------- processes
    "fork_bomb": {  # every process forks for ever
        "python": (
            "import os\n"
            "print('up', flush=True)\n"
            "while True:\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        pass\n"
        ),
        "javascript": (
            "const { spawn } = require('child_process');\n"
            "console.log('up');\n"
            "function more() {\n"
            "  spawn('sleep', ['3600'], { stdio: 'ignore' }).on('error', () => {});\n"
            "  setImmediate(more);\n"
            "}\n"
            "more();\n"
        ),
    },
    "thread_bomb": {  # threads until refused; prints how many it got
        "python": (
            "import threading, time\n"
            "started = 0\n"
            "try:\n"
            "    while started < 100000:\n"
            "        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"
            "        started += 1\n"
            "except RuntimeError:\n"
            "    print(started, 'refused')\n"
        ),
        "javascript": (  # a worker is a thread (on top of Node's own few)
            "const { Worker } = require('worker_threads');\n"
            "let started = 0;\n"
            "function more() {\n"
            "  try {\n"
            "    const w = new Worker('setInterval(() => {}, 1 << 30);', { eval: true });\n"
            "    w.on('online', () => { started++; more(); });\n"
            "  } catch (e) {\n"
            "    console.log(started, e.code === 'ERR_WORKER_INIT_FAILED' ? 'refused' : e.code);\n"
            "    process.exit(0);\n"
            "  }\n"
            "}\n"
            "more();\n"
        ),
    },
    "daemon": {  # a double-forked, session-leading daemon that keeps stdout open
        "python": (
            "import os, signal, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "        signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
            "        time.sleep(3600)\n"
            "    os._exit(0)\n"
            "os.wait()\n"
            "print('parent done', flush=True)\n"
        ),
        "javascript": (
            "const { spawn } = require('child_process');\n"
            "const daemon = spawn('sh', ['-c', 'trap \"\" TERM HUP; sleep 3600'],\n"
            "  { detached: true, stdio: 'inherit' });\n"
            "daemon.unref();\n"
            "console.log('parent done');\n"
        ),
    },
    "zombies": {  # children exit at once and are never waited for
        "python": (
            "import os\n"
            "forked = 0\n"
            "while forked < 1000:\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            os._exit(0)\n"
            "    except OSError:\n"
            "        break\n"
            "    forked += 1\n"
            "def state(pid):\n"
            "    try:\n"
            "        return open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0]\n"
            "    except OSError:\n"
            "        return ''\n"
            "zombies = sum(state(p) == 'Z' for p in os.listdir('/proc') if p.isdigit())\n"
            "print(forked, zombies)\n"
        ),
    },
    # ---------------------------------------------------------------- memory
    "heap_growth": {
        "python": "chunks = []\nwhile True:\n    chunks.append(b'x' * (4 << 20))\n",
        "javascript": "const a = [];\nfor (;;) { a.push(Buffer.alloc(4 << 20, 1)); }\n",
    },
    "huge_allocation": {  # one allocation of 1 GiB, every page written
        "python": "data = b'x' * (1 << 30)\nprint(len(data))\n",
        "javascript": "const b = Buffer.alloc(1 << 30, 1);\nconsole.log(b.length);\n",
    },
    "v8_heap": {  # JavaScript objects only: V8's own heap grows, not Buffers
        "javascript": (
            "const keep = [];\nfor (;;) { keep.push(new Array(1 << 16).fill(Math.random())); }\n"
        ),
    },
    # ---------------------------------------------------------------- files
    "fill_dir": {  # argv[1]: a directory; write 1 MiB files until refused
        "python": (
            "import errno, os, sys\n"
            "chunk, total = b'\\0' * (1 << 20), 0\n"
            "try:\n"
            "    for n in range(4096):\n"
            "        with open(os.path.join(sys.argv[1], f'f{n}'), 'wb') as handle:\n"
            "            handle.write(chunk)\n"
            "        total += len(chunk)\n"
            "    print('unlimited', total >> 20)\n"
            "except OSError as error:\n"
            "    print(errno.errorcode[error.errno], total >> 20)\n"
        ),
        "javascript": (
            "const fs = require('fs'); const path = require('path');\n"
            "const chunk = Buffer.alloc(1 << 20); let total = 0;\n"
            "try {\n"
            "  for (let n = 0; n < 4096; n++) {\n"
            "    fs.writeFileSync(path.join(process.argv[2], 'f' + n), chunk);\n"
            "    total += chunk.length;\n"
            "  }\n"
            "  console.log('unlimited', total >> 20);\n"
            "} catch (e) { console.log(e.code, total >> 20); }\n"
        ),
    },
    "big_file": {  # one file growing past the tmpfs size
        "python": (
            "import errno, os\n"
            "fd, total = os.open('big', os.O_WRONLY | os.O_CREAT), 0\n"
            "chunk = b'\\1' * (1 << 20)\n"
            "try:\n"
            "    while total < (1 << 32):\n"
            "        total += os.write(fd, chunk)\n"
            "    print('unlimited', total >> 20)\n"
            "except OSError as error:\n"
            "    print(errno.errorcode[error.errno], total >> 20)\n"
        ),
        "javascript": (
            "const fs = require('fs');\n"
            "const fd = fs.openSync('big', 'w'); const chunk = Buffer.alloc(1 << 20, 1);\n"
            "let total = 0;\n"
            "try {\n"
            "  while (total < 2 ** 32) total += fs.writeSync(fd, chunk);\n"
            "  console.log('unlimited', total >> 20);\n"
            "} catch (e) { console.log(e.code, Math.floor(total / 2 ** 20)); }\n"
        ),
    },
    "inode_flood": {  # empty files until refused (or a million of them)
        "python": (
            "import errno, os\n"
            "created = 0\n"
            "try:\n"
            "    while created < 1000000:\n"
            "        os.close(os.open(f'i{created}', os.O_WRONLY | os.O_CREAT))\n"
            "        created += 1\n"
            "    print('created', created)\n"
            "except OSError as error:\n"
            "    print(errno.errorcode[error.errno], created)\n"
        ),
    },
    "fd_exhaustion": {
        "python": (
            "import errno, os\n"
            "opened = []\n"
            "try:\n"
            "    while len(opened) < 1 << 20:\n"
            "        opened.append(os.open('/dev/null', os.O_RDONLY))\n"
            "except OSError as error:\n"
            "    print(errno.errorcode[error.errno], len(opened))\n"
        ),
        "javascript": (
            "const fs = require('fs'); let opened = 0;\n"
            "try { for (;;) { fs.openSync('/dev/null', 'r'); opened++; } }\n"
            "catch (e) { console.log(e.code, opened); }\n"
        ),
    },
    "leave_marks": {  # argv[1]: a token to write wherever the program can write
        "python": (
            "import os, sys\n"
            "for d in ('/workspace', '/tmp', '/dev/shm', '/workspace/.cache'):\n"
            "    os.makedirs(d, exist_ok=True)\n"
            "    with open(os.path.join(d, sys.argv[1]), 'w') as handle:\n"
            "        handle.write(sys.argv[1])\n"
            "print('marked')\n"
        ),
        "javascript": (
            "const fs = require('fs'); const token = process.argv[2];\n"
            "for (const d of ['/workspace', '/tmp', '/dev/shm', '/workspace/.cache']) {\n"
            "  fs.mkdirSync(d, { recursive: true });\n"
            "  fs.writeFileSync(d + '/' + token, token);\n"
            "}\n"
            "console.log('marked');\n"
        ),
    },
    "find_marks": {  # lists every writable place
        "python": (
            "import os\n"
            "for d in ('/workspace', '/tmp', '/dev/shm'):\n"
            "    for root, dirs, files in os.walk(d):\n"
            "        for name in sorted(dirs + files):\n"
            "            print(os.path.join(root, name))\n"
        ),
        "javascript": (
            "const fs = require('fs');\n"
            "for (const d of ['/workspace', '/tmp', '/dev/shm']) {\n"
            "  for (const name of fs.readdirSync(d, { recursive: true }).sort()) {\n"
            "    console.log(d + '/' + name);\n"
            "  }\n"
            "}\n"
        ),
    },
    # ---------------------------------------------------------------- output
    "long_line": {  # one 64 MiB write without a newline
        "python": "import sys\nsys.stdout.write('a' * (64 << 20))\n",
        "javascript": "process.stdout.write('a'.repeat(64 << 20));\n",
    },
    "endless_lines": {
        "python": "import sys\ni = 0\nwhile True:\n    sys.stdout.write(f'{i}\\n')\n    i += 1\n",
        "javascript": (
            "let i = 0;\n"
            "function go() {\n"
            "  while (process.stdout.write(`${i++}\\n`)) {}\n"
            "  process.stdout.once('drain', go);\n"
            "}\n"
            "go();\n"
        ),
    },
    "stderr_flood": {
        "python": "import sys\nwhile True:\n    sys.stderr.write('e' * 4096)\n",
        "javascript": (
            "const s = 'e'.repeat(4096);\n"
            "function go() {\n"
            "  while (process.stderr.write(s)) {}\n"
            "  process.stderr.once('drain', go);\n"
            "}\n"
            "go();\n"
        ),
    },
    "proc_self_fd": {
        "python": (
            "with open('/proc/self/fd/1', 'wb') as out:\n"
            "    out.write(b'through /proc\\n')\n"
            "with open('/proc/self/fd/2', 'wb') as err:\n"
            "    err.write(b'also through /proc\\n')\n"
        ),
        "javascript": (
            "const fs = require('fs');\n"
            "fs.appendFileSync('/proc/self/fd/1', 'through /proc\\n');\n"
            "fs.appendFileSync('/proc/self/fd/2', 'also through /proc\\n');\n"
        ),
    },
    "binary": {  # BINARY on stdout, reversed on stderr
        "python": (
            f"import sys\ndata = {BINARY!r}\n"
            "sys.stdout.buffer.write(data)\nsys.stderr.buffer.write(data[::-1])\n"
        ),
        "javascript": (
            f"const data = Buffer.from('{BINARY.hex()}', 'hex');\n"
            "process.stdout.write(data);\nprocess.stderr.write(Buffer.from(data).reverse());\n"
        ),
    },
    "close_stdout": {  # closes stdout, lives on, writes to stderr, exits 7
        "python": (
            "import os, sys, time\n"
            "print('before', flush=True)\n"
            "os.close(1)\n"
            "time.sleep(1.5)\n"
            "sys.stderr.write('still running\\n')\n"
            "os._exit(7)\n"
        ),
        "javascript": (
            "const fs = require('fs');\n"
            "fs.writeSync(1, 'before\\n');\n"
            "fs.closeSync(1);\n"
            "setTimeout(() => { fs.writeSync(2, 'still running\\n'); process.exit(7); }, 1500);\n"
        ),
    },
    "close_all": {  # closes stdin, stdout and stderr, lives on, exits 7
        "python": "import os, time\nfor fd in (0, 1, 2):\n    os.close(fd)\ntime.sleep(1.5)\n"
        "os._exit(7)\n",
        "javascript": (
            "const fs = require('fs');\n"
            "for (const fd of [0, 1, 2]) fs.closeSync(fd);\n"
            "setTimeout(() => process.exit(7), 1500);\n"
        ),
    },
    "forged_frames": {  # the supervisor's and Docker's framing, on both streams
        "python": (
            f"import sys\nfake = {FORGED_FRAMES!r}\n"
            "sys.stdout.buffer.write(fake)\nsys.stdout.flush()\n"
            "sys.stderr.buffer.write(fake)\nsys.exit(3)\n"
        ),
        "javascript": (
            f"const fake = Buffer.from('{FORGED_FRAMES.hex()}', 'hex');\n"
            "process.stdout.write(fake);\nprocess.stderr.write(fake);\n"
            "process.exitCode = 3;\n"
        ),
    },
    "forge_through_init": {  # writes a fake exit report into PID 1's own stdout
        "python": (
            f"import sys, time\nfake = {FORGED_EXIT!r}\n"
            "try:\n"
            "    with open('/proc/1/fd/1', 'wb', buffering=0) as out:\n"
            "        out.write(fake)\n"
            "except OSError as error:\n"
            "    print('refused', error.errno, flush=True)\n"
            "time.sleep(1)\n"
            "print('real output')\n"
            "sys.exit(9)\n"
        ),
        "javascript": (
            f"const fake = Buffer.from('{FORGED_EXIT.hex()}', 'hex');\n"
            "try { require('fs').appendFileSync('/proc/1/fd/1', fake); }\n"
            "catch (e) { console.log('refused', e.errno === undefined ? e.code : -e.errno); }\n"
            "setTimeout(() => { console.log('real output'); process.exit(9); }, 1000);\n"
        ),
    },
}
