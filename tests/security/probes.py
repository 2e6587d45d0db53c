"""Probes: programs that try something forbidden and report what they got.

`PROBES[name][language]` is the source. Each prints one JSON object mapping
an attempt to its outcome: "ok" if the call succeeded, else the errno's name
(Python) or Node's error code. Probes change nothing outside their own
sandbox even where an attempt succeeds: writes are only opened, never made;
the only network traffic tried is to loopback addresses.
"""

from __future__ import annotations

_PY = """\
import ctypes, errno, json, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
report = {}
def name(code):
    return errno.errorcode.get(code, str(code))
def attempt(fn, *args):
    try:
        fn(*args)
    except OSError as error:
        return name(error.errno)
    return "ok"
def syscall(number, *args):
    return "ok" if libc.syscall(number, *args) >= 0 else name(ctypes.get_errno())
def in_child(fn):
    # Runs fn in a forked child so that what it changes (namespaces) dies with it.
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn())
        finally:
            os._exit(255)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
def opened_for_writing(path, flags=0):
    # Opening is the permission check; nothing is ever written.
    def go():
        os.close(os.open(path, os.O_WRONLY | flags))
    return attempt(go)
def readable(path):
    try:
        if os.path.isdir(path):
            return "READ" if os.listdir(path) else "empty"
        with open(path, "rb") as handle:
            return "READ" if handle.read(64) else "empty"
    except OSError as error:
        return name(error.errno)
"""
_PY_END = "print(json.dumps(report, sort_keys=True))\n"

_JS = """\
const fs = require('fs');
const report = {};
function attempt(fn) {
  try { fn(); return 'ok'; } catch (e) { return e.code || String(e); }
}
"""
_JS_END = "console.log(JSON.stringify(report));\n"

# Paths a program must not be able to open for writing.
READ_ONLY_PATHS = [
    "/etc/passwd",
    "/etc/hostname",
    "/usr/local/bin/cb-supervisor",
    "/bin/sh",
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/hostname",
    "/proc/sysrq-trigger",
    "/sys/kernel/uevent_helper",
    "/sys/fs/cgroup/memory/release_agent",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    "/sys/fs/cgroup/pids/pids.max",
    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
]
# Paths that would hand the program the container engine.
ENGINE_PATHS = [
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/docker",
    "/var/lib/docker",
    "/run/runc",
]
SYSCALLS = {  # x86-64 numbers of calls that reach deep into the kernel
    "bpf": (321, 0, None, 0),
    "perf_event_open": (298, None, 0, -1, -1, 0),
    "userfaultfd": (323, 0),
    "keyctl": (250, 0, 0, 0, 0, 0),
    "add_key": (248, b"user", b"k", b"v", 1, -1),
    "kexec_load": (246, 0, 0, None, 0),
    "open_by_handle_at": (304, -100, b"\0" * 16, 0),
    "swapon": (167, b"/workspace/swap", 0),
    "acct": (163, b"/workspace/acct"),
    "reboot": (169, 0xFEE1DEAD, 672274793, 0x4321FEDC, None),
}


def _py(body: str) -> str:
    return _PY + body + _PY_END


def _js(body: str) -> str:
    return _JS + body + _JS_END


PROBES: dict[str, dict[str, str]] = {
    # ------------------------------------------------------------- privilege
    "identity": {
        "python": _py(
            "report['setuid'] = attempt(os.setuid, 0)\n"
            "report['setgid'] = attempt(os.setgid, 0)\n"
            "report['setgroups'] = attempt(os.setgroups, [0])\n"
            "report['seteuid'] = attempt(os.seteuid, 0)\n"
            "report['uid'], report['euid'] = os.getuid(), os.geteuid()\n"
        ),
        "javascript": _js(
            "report.setuid = attempt(() => process.setuid(0));\n"
            "report.setgid = attempt(() => process.setgid(0));\n"
            "report.setgroups = attempt(() => process.setgroups([0]));\n"
            "report.seteuid = attempt(() => process.seteuid(0));\n"
            "report.uid = process.getuid(); report.euid = process.geteuid();\n"
        ),
    },
    "setuid_binary": {  # passwd is setuid root; read its uids while it prompts
        "python": _py(
            "import stat, subprocess\n"
            "binary = '/usr/bin/passwd'\n"
            "info = os.stat(binary)\n"
            "report['setuid_root'] = bool(info.st_mode & stat.S_ISUID) and info.st_uid == 0\n"
            "child = subprocess.Popen([binary], stdin=subprocess.PIPE,\n"
            "                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
            "report['prompt'] = child.stderr.read(8).decode()  # blocks until it prompts\n"
            "with open(f'/proc/{child.pid}/status') as status:\n"
            "    uids = next(line for line in status if line.startswith('Uid:'))\n"
            "report['uids'] = [int(u) for u in uids.split()[1:]]\n"
            "child.kill()\n"
            "child.wait()\n"
        ),
    },
    "capabilities": {
        "python": _py(
            "for line in open('/proc/self/status'):\n"
            "    if line.startswith('Cap'):\n"
            "        key, value = line.split(':')\n"
            "        report[key] = int(value, 16)\n"
        ),
        "javascript": _js(
            "for (const line of fs.readFileSync('/proc/self/status', 'utf8').split('\\n')) {\n"
            "  if (line.startsWith('Cap')) {\n"
            "    const [key, value] = line.split(':');\n"
            "    report[key] = parseInt(value.trim(), 16);\n"
            "  }\n"
            "}\n"
        ),
    },
    "status_flags": {  # the kernel's answer (prctl) and what /proc/self/status shows
        "python": _py(
            "report['no_new_privs'] = libc.prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS\n"
            "report['seccomp'] = libc.prctl(21, 0, 0, 0, 0)  # PR_GET_SECCOMP\n"
            "for line in open('/proc/self/status'):\n"
            "    key, _, value = line.partition(':')\n"
            "    if key in ('NoNewPrivs', 'Seccomp'):\n"
            "        report[key] = int(value)\n"
        ),
    },
    "ptrace_init": {
        "python": _py(
            "def ptrace(request):\n"
            "    return 'ok' if libc.ptrace(request, 1, 0, 0) >= 0 else name(ctypes.get_errno())\n"
            "report['attach'], report['seize'] = ptrace(16), ptrace(0x4206)\n"
            "report['mem'] = readable('/proc/1/mem')\n"
        ),
    },
    "signal_init": {  # signals PID 1 (cb-supervisor), then carries on
        "python": _py(
            "import signal\n"
            "for sig in ('SIGCHLD', 'SIGPIPE', 'SIGSTOP', 'SIGTERM', 'SIGKILL'):\n"
            "    report[sig] = attempt(os.kill, 1, getattr(signal, sig))\n"
        ),
    },
    "init_opaque": {  # what of PID 1 the program can see or open
        "python": _py(
            "for item in ('environ', 'fd', 'root', 'cwd', 'maps', 'mem'):\n"
            "    report[item] = readable(f'/proc/1/{item}')\n"
            "report['fd/1'] = opened_for_writing('/proc/1/fd/1')\n"
        ),
    },
    "mount": {
        "python": _py(
            "report['mount'] = 'ok' if libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0 "
            "else name(ctypes.get_errno())\n"
            "report['umount'] = 'ok' if libc.umount2(b'/tmp', 2) == 0 else "
            "name(ctypes.get_errno())\n"
            "report['chroot'] = attempt(os.chroot, '/workspace')\n"
        ),
    },
    "unshare": {  # each namespace in its own child: exit code is the errno
        "python": _py(
            "flags = {'user': 0x10000000, 'mount': 0x20000, 'net': 0x40000000,\n"
            "         'pid': 0x20000000, 'uts': 0x4000000, 'ipc': 0x8000000}\n"
            "for key, flag in flags.items():\n"
            "    code = in_child(lambda: 0 if libc.unshare(flag) == 0 else ctypes.get_errno())\n"
            "    report[key] = 'ok' if code == 0 else name(code)\n"
        ),
    },
    "mount_in_userns": {  # a new user namespace, then a mount inside it
        "python": _py(
            "def inside():\n"
            "    if libc.unshare(0x10000000 | 0x20000) != 0:\n"
            "        return 200 + ctypes.get_errno()\n"
            "    if libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) != 0:\n"
            "        return ctypes.get_errno()\n"
            "    return 0\n"
            "code = in_child(inside)\n"
            "report['unshare'] = name(code - 200) if code > 200 else 'ok'\n"
            "report['mount'] = 'not tried' if code > 200 else 'ok' if code == 0 else name(code)\n"
        ),
    },
    "kernel_modules": {
        "python": _py(
            "image = ctypes.create_string_buffer(b'\\x7fELF' + b'\\0' * 60)\n"
            "report['init_module'] = syscall(175, image, 64, b'')\n"
            "fd = os.open('/workspace/main.py', os.O_RDONLY)\n"
            "report['finit_module'] = syscall(313, fd, b'', 0)\n"
            "report['delete_module'] = syscall(176, b'ext4', 0)\n"
        ),
    },
    "kernel_surface": {
        "python": _py(
            f"for key, call in {SYSCALLS!r}.items():\n    report[key] = syscall(*call)\n"
        ),
    },
    "io_uring": {
        "python": _py(
            "params = ctypes.create_string_buffer(120)\n"
            "report['io_uring_setup'] = syscall(425, 4, params)\n"
        ),
    },
    "kernel_snooping": {  # nothing of the host kernel's private state is readable
        "python": _py(
            "for path in ('/proc/kcore', '/proc/kmsg', '/dev/kmsg', '/proc/keys',\n"
            "             '/proc/timer_list', '/proc/sched_debug', '/sys/firmware',\n"
            "             '/sys/kernel/debug', '/sys/kernel/security',\n"
            "             '/boot', '/lib/modules'):\n"
            "    report[path] = readable(path)\n"
        ),
    },
    "read_only_paths": {
        "python": _py(
            f"for path in {READ_ONLY_PATHS!r} + [sys.executable]:\n"
            "    report[path] = opened_for_writing(path)\n"
            "for path in ('/pwned', '/usr/pwned', '/etc/pwned'):\n"
            "    report[path] = opened_for_writing(path, os.O_CREAT | os.O_EXCL)\n"
            "def lower_oom_score():\n"
            "    with open('/proc/self/oom_score_adj', 'w') as handle:\n"
            "        handle.write('-1000')\n"
            "report['oom_score_adj=-1000'] = attempt(lower_oom_score)\n"
        ),
        "javascript": _js(
            f"for (const path of {READ_ONLY_PATHS!r}.concat([process.execPath])) {{\n"
            "  report[path] = attempt(() => fs.closeSync(fs.openSync(path, 'r+')));\n"
            "}\n"
            "for (const path of ['/pwned', '/usr/pwned', '/etc/pwned']) {\n"
            "  report[path] = attempt(() => fs.closeSync(fs.openSync(path, 'wx')));\n"
            "}\n"
            "report['oom_score_adj=-1000'] = attempt(\n"
            "  () => fs.writeFileSync('/proc/self/oom_score_adj', '-1000'));\n"
        ),
    },
    "devices": {
        "python": _py(
            "import stat\n"
            "report['mknod_block'] = attempt(os.mknod, 'sda', stat.S_IFBLK | 0o600,\n"
            "                                os.makedev(8, 0))\n"
            "report['mknod_char'] = attempt(os.mknod, 'mem', stat.S_IFCHR | 0o600,\n"
            "                               os.makedev(1, 1))\n"
            "for key, node in (('open_block', 'sda'), ('open_char', 'mem')):\n"
            "    exists = os.path.exists(node)\n"
            "    report[key] = attempt(lambda: os.close(os.open(node, os.O_RDONLY))) if exists "
            "else 'no node'\n"
            "found = {'block': [], 'char': []}\n"
            "for root, dirs, files in os.walk('/dev'):\n"
            "    for entry in files:\n"
            "        mode = os.lstat(os.path.join(root, entry)).st_mode\n"
            "        kind = 'block' if stat.S_ISBLK(mode) else 'char' if stat.S_ISCHR(mode) "
            "else ''\n"
            "        if kind:\n"
            "            found[kind].append(os.path.join(root, entry)[5:])\n"
            "report.update({k: sorted(v) for k, v in found.items()})\n"
        ),
    },
    "kernel_release": {
        "python": _py("report['release'] = os.uname().release\n"),
    },
    # ------------------------------------------------------------- secrets and reach
    "environment": {
        "python": _py(
            "report['env'] = dict(os.environ)\n"
            "try:\n"
            "    report['init_environ'] = open('/proc/1/environ', 'rb').read().decode()\n"
            "except OSError as error:\n"
            "    report['init_environ'] = name(error.errno)\n"
        ),
        "javascript": _js(
            "report.env = process.env;\n"
            "report.init_environ = attempt(() => fs.readFileSync('/proc/1/environ'));\n"
            "if (report.init_environ === 'ok') {\n"
            "  report.init_environ = fs.readFileSync('/proc/1/environ', 'latin1');\n"
            "}\n"
        ),
    },
    "interfaces": {
        "python": _py(
            "report['interfaces'] = sorted(n for _, n in socket.if_nameindex())\n"
            "lines = open('/proc/net/dev').read().splitlines()[2:]\n"
            "report['proc_net_dev'] = sorted(line.split(':')[0].strip() for line in lines)\n"
        ),
        "javascript": _js(
            "report.interfaces = Object.keys(require('os').networkInterfaces()).sort();\n"
            "report.proc_net_dev = fs.readFileSync('/proc/net/dev', 'utf8').trim()\n"
            "  .split('\\n').slice(2).map((l) => l.split(':')[0].trim()).sort();\n"
        ),
    },
    "routes_and_names": {
        "python": _py(
            "def rows(path):\n"
            "    try:\n"
            "        return [line.split() for line in open(path).read().splitlines()]\n"
            "    except FileNotFoundError:\n"
            "        return []\n"
            "report['ipv4_routes'] = len(rows('/proc/net/route')[1:])\n"
            "report['ipv6_route_devices'] = sorted({r[-1] for r in rows('/proc/net/ipv6_route')})\n"
            "report['nameservers'] = [r[1] for r in rows('/etc/resolv.conf')\n"
            "                         if r and r[0] == 'nameserver']\n"
            "report['hosts'] = [r for r in rows('/etc/hosts') if r and not r[0].startswith('#')]\n"
        ),
    },
    "raw_sockets": {  # creating a raw or packet socket sends nothing
        "python": _py(
            "kinds = {'inet_raw_icmp': (2, 3, 1), 'inet_raw_raw': (2, 3, 255),\n"
            "         'inet6_raw_icmp': (10, 3, 58), 'packet_raw': (17, 3, 0x0300),\n"
            "         'packet_dgram': (17, 2, 0x0300)}\n"
            "def try_all():\n"
            "    for key, args in kinds.items():\n"
            "        report[key] = attempt(lambda: socket.socket(*args).close())\n"
            "try_all()\n"
        ),
    },
    "raw_sockets_in_userns": {  # the same after unshare(CLONE_NEWUSER), in a child
        "python": _py(
            "kinds = {'inet_raw_icmp': (2, 3, 1), 'packet_raw': (17, 3, 0x0300)}\n"
            "read_end, write_end = os.pipe()\n"
            "def inside():\n"
            "    found = {'unshare': 'ok' if libc.unshare(0x10000000) == 0 else\n"
            "             name(ctypes.get_errno())}\n"
            "    for key, args in kinds.items():\n"
            "        found[key] = attempt(lambda: socket.socket(*args).close())\n"
            "    os.write(write_end, json.dumps(found).encode())\n"
            "    return 0\n"
            "in_child(inside)\n"
            "os.close(write_end)\n"
            "report.update(json.loads(os.read(read_end, 4096)))\n"
        ),
    },
    "engine_sockets": {
        "python": _py(
            "import stat\n"
            f"for path in {ENGINE_PATHS!r}:\n"
            "    report[path] = os.path.exists(path)\n"
            "sockets = []\n"
            "for top in ('/run', '/var/run', '/tmp', '/workspace', '/dev', '/etc'):\n"
            "    for root, dirs, files in os.walk(top):\n"
            "        for entry in files:\n"
            "            if stat.S_ISSOCK(os.lstat(os.path.join(root, entry)).st_mode):\n"
            "                sockets.append(os.path.join(root, entry))\n"
            "report['unix_sockets'] = sockets\n"
        ),
        "javascript": _js(
            f"for (const path of {ENGINE_PATHS!r}) report[path] = fs.existsSync(path);\n"
            "report.unix_sockets = [];\n"
            "for (const top of ['/run', '/var/run', '/tmp', '/workspace', '/dev', '/etc']) {\n"
            "  for (const entry of fs.readdirSync(top, { recursive: true })) {\n"
            "    const path = top + '/' + entry;\n"
            "    const info = fs.lstatSync(path, { throwIfNoEntry: false });  // fds come and go\n"
            "    if (info && info.isSocket()) report.unix_sockets.push(path);\n"
            "  }\n"
            "}\n"
        ),
    },
    # argv: TCP ports on the host's 127.0.0.1 (the server's, a test listener's),
    # a UDP port there, and an abstract unix socket name bound on the host.
    "host_loopback": {
        "python": _py(
            "tcp_ports, udp_port, abstract = sys.argv[1:-2], int(sys.argv[-2]), sys.argv[-1]\n"
            "def connect(family, address):\n"
            "    with socket.socket(family, socket.SOCK_STREAM) as s:\n"
            "        s.settimeout(5)\n"
            "        s.connect(address)\n"
            "for port in tcp_ports:\n"
            "    report[f'tcp 127.0.0.1:{port}'] = attempt(connect, 2, ('127.0.0.1', int(port)))\n"
            "    report[f'tcp [::1]:{port}'] = attempt(connect, 10, ('::1', int(port)))\n"
            "def send(address):\n"
            "    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:\n"
            "        s.sendto(b'hello from the sandbox', address)\n"
            "attempt(send, ('127.0.0.1', udp_port))  # sent, or refused (no network at all)\n"
            "report['abstract'] = attempt(connect, 1, '\\0' + abstract)\n"
            "report['abstract_listed'] = abstract in open('/proc/net/unix').read()\n"
        ),
        "javascript": _js(
            "const net = require('net'); const dgram = require('dgram');\n"
            "const args = process.argv.slice(2);\n"
            "const tcp = args.slice(0, -2); const udp = Number(args.at(-2));\n"
            "const abstract = args.at(-1);\n"
            "function connect(key, options) {\n"
            "  return new Promise((done) => {\n"
            "    const s = net.connect(options);\n"
            "    s.setTimeout(5000, () => { report[key] = 'ETIMEDOUT'; s.destroy(); done(); });\n"
            "    s.on('connect', () => { report[key] = 'ok'; s.destroy(); done(); });\n"
            "    s.on('error', (e) => { report[key] = e.code; done(); });\n"
            "  });\n"
            "}\n"
            "const tries = [];\n"
            "for (const port of tcp) {\n"
            "  tries.push(connect(`tcp 127.0.0.1:${port}`, { host: '127.0.0.1', port }));\n"
            "  tries.push(connect(`tcp [::1]:${port}`, { host: '::1', port }));\n"
            "}\n"
            "tries.push(connect('abstract', { path: '\\0' + abstract }));\n"
            "tries.push(new Promise((done) => {\n"
            "  const s = dgram.createSocket('udp4');\n"
            "  s.send('hello from the sandbox', udp, '127.0.0.1', () => { s.close(); done(); });\n"
            "}));\n"
            "Promise.all(tries).then(() => {\n"
            "  report.abstract_listed = fs.readFileSync('/proc/net/unix', 'latin1')"
            ".includes(abstract);\n"
            "  console.log(JSON.stringify(report));\n"
            "});\n"
        ).removesuffix(_JS_END),
    },
}
