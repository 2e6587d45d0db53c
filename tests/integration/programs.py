"""The same behaviours written in each language the integration tests cover."""

from __future__ import annotations

PROGRAMS: dict[str, dict[str, str]] = {
    "python": {
        "hello": 'print("hello, world")\n',
        "echo": "import sys\nsys.stdout.write(sys.stdin.read())\n",
        "exit3": "import sys\nsys.exit(3)\n",
        "throw": 'raise ValueError("boom")\n',
        "loop": "while True:\n    pass\n",
        "memory": "chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))\n",
        "flood": "import sys\nwhile True:\n    sys.stdout.write('y' * 4096)\n",
        "network": (
            "import os, socket, sys\n"
            "lines = open('/proc/net/dev').read().splitlines()[2:]  # this netns's own\n"
            "print(sorted(line.split(':')[0].strip() for line in lines))\n"
            "print(len(open('/proc/net/route').read().splitlines()[1:]))  # past the header\n"
            "s = socket.socket()\n"
            "s.settimeout(2)\n"
            "try:\n"
            "    s.connect(('127.0.0.1', int(sys.argv[1])))\n"
            "    print('connected')\n"
            "except OSError as e:\n"
            "    print('refused', type(e).__name__)\n"
        ),
        "write_root": (
            "try:\n"
            "    open('/pwned', 'w').write('x')\n"
            "    print('written')\n"
            "except OSError as e:\n"
            "    print('blocked', e.errno)\n"
        ),
        "fork_bomb": (
            "import os, time\n"
            "n = 0\n"
            "while True:\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(60)\n"
            "            os._exit(0)\n"
            "        n += 1\n"
            "    except OSError:\n"
            "        print('fork refused after', n, flush=True)\n"
            "        time.sleep(60)\n"
        ),
        "slow": (
            "import time\nprint('first', flush=True)\ntime.sleep(1)\nprint('second', flush=True)\n"
        ),
        "split_utf8": (
            "import sys, time\n"
            "sys.stdout.buffer.write(b'\\xe2\\x82'); sys.stdout.flush()\n"
            "time.sleep(0.3)\n"
            "sys.stdout.buffer.write(b'\\xac\\n'); sys.stdout.flush()\n"
        ),
        "env": "import os\nfor k in sorted(os.environ):\n    print(k + '=' + os.environ[k])\n",
        "sleep": "import time\nprint('up', flush=True)\ntime.sleep(60)\n",
        "hostname": (
            "import socket, time\nprint(socket.gethostname(), flush=True)\ntime.sleep(60)\n"
        ),
        "limits": (
            "import os\n"
            "def first(*paths):\n"
            "    path = next(p for p in paths if os.path.exists(p))\n"
            "    return open(path).read().strip()\n"
            "print(first('/sys/fs/cgroup/memory/memory.limit_in_bytes',\n"
            "            '/sys/fs/cgroup/memory.max'))\n"
            "print(first('/sys/fs/cgroup/pids/pids.max', '/sys/fs/cgroup/pids.max'))\n"
        ),
        "leave_file": (
            "import os, socket\n"
            "print(socket.gethostname(), sorted(os.listdir('.')), sorted(os.listdir('/tmp')))\n"
            "open('left-behind', 'w').write('x')\n"
            "open('/tmp/left-behind', 'w').write('x')\n"
        ),
    },
    "javascript": {
        "hello": 'console.log("hello, world");\n',
        "echo": "process.stdin.pipe(process.stdout);\n",
        "exit3": "process.exit(3);\n",
        "throw": 'throw new Error("boom");\n',
        "loop": "for (;;) {}\n",
        "memory": "const a = []; for (;;) { a.push(Buffer.alloc(8 << 20, 1)); }\n",
        "flood": (
            "const s = 'y'.repeat(4096);\n"
            "function go() {\n"
            "  while (process.stdout.write(s)) {}\n"
            "  process.stdout.once('drain', go);\n"
            "}\n"
            "go();\n"
        ),
        "network": (
            "const fs = require('fs'); const net = require('net');\n"
            "const devs = fs.readFileSync('/proc/net/dev', 'utf8').trim().split('\\n').slice(2);\n"
            "console.log(JSON.stringify(devs.map((l) => l.split(':')[0].trim()).sort())"
            ".replace(/\"/g, \"'\").replace(/,/g, ', '));\n"
            "const routes = fs.readFileSync('/proc/net/route', 'utf8').trim().split('\\n');\n"
            "console.log(routes.length - 1);\n"
            "const s = net.connect(Number(process.argv[2]), '127.0.0.1');\n"
            "s.on('connect', () => { console.log('connected'); s.destroy(); });\n"
            "s.on('error', (e) => console.log('refused', e.code));\n"
        ),
        "write_root": (
            "try { require('fs').writeFileSync('/pwned', 'x'); console.log('written'); }\n"
            "catch (e) { console.log('blocked', e.code); }\n"
        ),
        "slow": ("console.log('first');\nsetTimeout(() => console.log('second'), 1000);\n"),
    },
}
