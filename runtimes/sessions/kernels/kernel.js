// CodeBeaker's JavaScript kernel: one Node process that runs a session's code cells.
//
// Started inside the sandbox as `node -e <this source> TOKEN`; speaks PROTOCOL.md
// (beside this file). Stand-alone on purpose: Node's own modules only (Node 18 in
// the image), nothing of codebeaker, no other file. Everything is inside one
// function so that none of the kernel's names lands in the cells' global scope.
//
// Cells run with vm.runInThisContext in the main context: their top-level `var`,
// `let`, `const`, `class` and functions stay for the next cells.
//
// Output. A SIGINT interrupts a cell wherever it is, Node's own JavaScript
// included: one that lands inside a stream's write (a console.log, in the
// cell's call stack) leaves that stream waiting forever for its callback, and
// nothing would be written after it. So no byte goes through a Node stream:
// every write is one fs.writeSync on fd 1 or 2, a message of `out`/`err` carries
// at most CHUNK bytes (its line stays under PIPE_BUF, a write the pipe takes
// whole or not at all). `console` writes `out`/`err` messages of the running
// cell, process.stderr.write too; process.stdout.write is raw output on fd 1, in
// order with the messages. Output while no cell runs (a timer a cell left
// behind) is held and sent as the next cell's, up to HOLD bytes.
(() => {
  'use strict';
  const fs = require('fs');
  const Module = require('module');
  const path = require('path');
  const readline = require('readline');
  const { Writable } = require('stream');
  const util = require('util');
  const vm = require('vm');

  const TOKEN = /^[0-9a-f]{32}$/;
  const CHUNK = 3000; // bytes per `out`/`err` message: 4000 in base64, the line < 4096
  const HOLD = 1 << 20;
  const SIGINT_POLL = 20; // ms, while a cell waits for its Promise
  const pause = new Int32Array(new SharedArrayBuffer(4));

  // All of `data` on `fd`, waiting out EAGAIN (a non-blocking pipe that is full).
  function writeAll(fd, data) {
    let done = 0;
    while (done < data.length) {
      try {
        done += fs.writeSync(fd, data, done, data.length - done);
      } catch (error) {
        if (error.code === 'EAGAIN') Atomics.wait(pause, 0, 0, 1);
        else if (error.code === 'EINTR') continue;
        else process.exit(1); // the server is gone: nobody can hear anything more
      }
    }
  }

  const startup = process.argv[1];
  if (process.argv.length !== 2 || !TOKEN.test(startup)) {
    writeAll(2, Buffer.from('usage: node -e <kernel.js> TOKEN (32 lowercase hex digits)\n'));
    process.exit(2);
  }
  process.argv.splice(1);

  function send(token, message) {
    writeAll(1, Buffer.from('\n\x1e' + token + '\x1f' + JSON.stringify(message) + '\n'));
  }

  function diagnose(text) {
    writeAll(2, Buffer.from(`kernel: ${text}\n`));
  }

  let current = null; // the running cell: {token, waiting, handled}
  let held = []; // [kind, Buffer] written while no cell ran
  let heldBytes = 0;
  let dropped = 0;

  function output(kind, data) {
    if (data.length === 0) return;
    if (current === null) {
      const room = Math.max(0, HOLD - heldBytes);
      if (room < data.length) dropped += data.length - room;
      if (room > 0) {
        held.push([kind, data.subarray(0, room)]);
        heldBytes += Math.min(room, data.length);
      }
      return;
    }
    for (let start = 0; start < data.length; start += CHUNK) {
      const chunk = data.subarray(start, start + CHUNK);
      send(current.token, { k: kind, data: chunk.toString('base64') });
    }
  }

  function bytes(chunk, encoding) {
    if (Buffer.isBuffer(chunk)) return chunk;
    if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    return Buffer.from(String(chunk), typeof encoding === 'string' ? encoding : 'utf8');
  }

  // console's streams: only write() is called (ignoreErrors: false), no state to break.
  const { Console } = console;
  globalThis.console = new Console({
    stdout: { write: (text) => output('out', Buffer.from(String(text))) },
    stderr: { write: (text) => output('err', Buffer.from(String(text))) },
    ignoreErrors: false,
    colorMode: false,
  });
  globalThis.console.Console = Console;

  // process.stdout and process.stderr for the cells: Writables (pipe() into them
  // works) that write at once.
  function stdio(fd, write) {
    const stream = new Writable({
      decodeStrings: false,
      write(chunk, encoding, callback) {
        write(bytes(chunk, encoding));
        callback();
      },
    });
    stream.fd = fd;
    stream.isTTY = false;
    return stream;
  }
  const cellStdout = stdio(1, (data) => writeAll(1, data));
  const cellStderr = stdio(2, (data) => output('err', data));
  Object.defineProperty(process, 'stdout', { configurable: true, get: () => cellStdout });
  Object.defineProperty(process, 'stderr', { configurable: true, get: () => cellStderr });

  // require() relative to the current directory (process.chdir persists), as
  // Python's imports from its working directory.
  const here = () => Module.createRequire(path.join(process.cwd(), '[cell]'));
  function cellRequire(id) {
    return here()(id);
  }
  cellRequire.resolve = (request, options) => here().resolve(request, options);
  cellRequire.resolve.paths = (request) => here().resolve.paths(request);
  cellRequire.cache = require.cache;
  cellRequire.extensions = require.extensions;
  cellRequire.main = require.main;
  globalThis.require = cellRequire;
  globalThis.module = module;
  globalThis.exports = module.exports;

  // The cell's frames of a stack: V8's header (with the source line and caret
  // Node adds), then the frames up to the last one in a cell (not the kernel's).
  function cellStack(stack) {
    const lines = String(stack).split('\n');
    let first = lines.findIndex((line) => /^\s+at /.test(line));
    if (first === -1) first = lines.length;
    let last = -1;
    for (let i = first; i < lines.length; i += 1) {
      if (/[ (]cell \d+:\d+:\d+\)?$/.test(lines[i])) last = i;
    }
    return lines.slice(0, last === -1 ? first : last + 1).join('\n');
  }

  function isError(value) {
    return util.types.isNativeError(value) || value instanceof Error;
  }

  function describe(error) {
    if (!isError(error)) return safeInspect(error);
    const stack = error.stack;
    if (typeof stack !== 'string') return safeInspect(error);
    const trimmed = cellStack(stack);
    try {
      error.stack = trimmed; // util.inspect adds the error's own properties (code, errno, ...)
      return util.inspect(error);
    } catch {
      return trimmed;
    } finally {
      try {
        error.stack = stack;
      } catch {
        // a frozen error: it kept its stack anyway
      }
    }
  }

  function safeInspect(value) {
    try {
      return util.inspect(value);
    } catch (error) {
      return `[value whose inspection threw: ${String(error)}]`;
    }
  }

  function failure(error) {
    if (error && error.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED') {
      return { done: { status: 'interrupted' } };
    }
    if (!isError(error)) {
      const evalue = safeInspect(error);
      return { err: `Uncaught ${evalue}\n`, done: { status: 'error', ename: 'Uncaught', evalue } };
    }
    const err = describe(error) + '\n';
    let ename = 'Error';
    let evalue = '';
    try {
      ename = String(error.name || (error.constructor && error.constructor.name) || 'Error');
      evalue = String(error.message);
    } catch {
      // a getter that throws: the defaults
    }
    return { err, done: { status: 'error', ename, evalue } };
  }

  function shown(value) {
    if (value === undefined) return { done: { status: 'ok' } };
    let text;
    try {
      text = util.inspect(value);
    } catch (error) {
      return failure(error);
    }
    return { display: text, done: { status: 'ok' } };
  }

  let count = 0;
  const queue = [];
  let closing = false;

  function finish(cell, result) {
    if (current !== cell) return; // already ended (interrupted while it waited)
    if (result.display !== undefined) {
      const data = Buffer.from(result.display, 'utf8').toString('base64');
      send(cell.token, { k: 'display', mime: 'text/plain', data });
    }
    if (result.err !== undefined) output('err', Buffer.from(result.err, 'utf8'));
    send(cell.token, { k: 'done', ...result.done });
    current = null;
    setImmediate(next);
  }

  function run(token, code) {
    count += 1;
    const cell = { token, waiting: false, handled: false };
    current = cell;
    // A safety net: should a SIGINT as the cell's synchronous code ends make vm's
    // watchdog terminate the kernel's code after it (Node reads the watchdog's
    // flag before it unregisters it), this still ends the cell.
    setImmediate(() => {
      if (!cell.handled) finish(cell, { done: { status: 'interrupted' } });
    });
    const pending = held;
    held = [];
    heldBytes = 0;
    for (const [kind, data] of pending) output(kind, data);
    if (dropped > 0) {
      output('err', Buffer.from(`[kernel: ${dropped} bytes written between cells were dropped]\n`));
      dropped = 0;
    }
    clearPendingSigint();
    let value;
    try {
      value = vm.runInThisContext(code, { filename: `cell ${count}`, breakOnSigint: true });
    } catch (error) {
      finish(cell, failure(error));
      cell.handled = true;
      return;
    }
    if (!util.types.isPromise(value)) {
      finish(cell, shown(value));
      cell.handled = true;
      return;
    }
    cell.waiting = true;
    pollSigint(cell);
    value.then(
      (resolved) => finish(cell, shown(resolved)),
      (error) => finish(cell, failure(error)),
    );
    cell.handled = true;
  }

  function next() {
    if (current !== null) return;
    const request = queue.shift();
    if (request !== undefined) {
      run(request.cell, request.code);
    } else if (closing) {
      process.exit(0); // every write was synchronous: nothing is left to flush
    }
  }

  // SIGINT. vm's breakOnSigint alone leaves the kernel to die of a SIGINT that
  // comes just before or after a cell's synchronous code: vm removes every
  // 'SIGINT' listener for the run (the default action is back until its watchdog
  // starts) and its watchdog's stop installs Node's exit-on-SIGINT until the
  // listeners are back. So, as Node's REPL, the kernel keeps a SIGINT watchdog of
  // its own started for its whole life, with no 'SIGINT' listener: vm's watchdog
  // nests in it (the signal handler stays), a SIGINT during a cell's synchronous
  // code interrupts it, and any other SIGINT only marks the watchdog "pending":
  // a cell that waits for its Promise polls that, and a new cell clears it.
  const watchdog = sigintWatchdog();

  function sigintWatchdog() {
    try {
      const contextify = process.binding('contextify');
      if (contextify.startSigintWatchdog()) return contextify; // true: started
    } catch {
      // no such binding in this Node: the listener below instead
    }
    process.on('SIGINT', () => {
      if (current !== null && current.waiting) finish(current, { done: { status: 'interrupted' } });
    });
    return null;
  }

  function clearPendingSigint() {
    if (watchdog === null) return;
    watchdog.startSigintWatchdog(); // nested: only counts
    watchdog.stopSigintWatchdog(); // back to one: clears and returns the pending flag
  }

  function pollSigint(cell) {
    if (watchdog === null) return;
    const timer = setInterval(() => {
      if (current !== cell) clearInterval(timer);
      else if (watchdog.watchdogHasPendingSigint()) {
        clearInterval(timer);
        finish(cell, { done: { status: 'interrupted' } });
      }
    }, SIGINT_POLL);
  }

  // An error no cell catches (a timer's, a Promise nobody awaits) is shown, and the kernel lives on.
  process.on('uncaughtException', (error) => {
    output('err', Buffer.from(`Uncaught ${describe(error)}\n`));
  });
  process.on('unhandledRejection', (reason) => {
    output('err', Buffer.from(`Unhandled rejection: ${describe(reason)}\n`));
  });

  const requests = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  requests.on('line', (line) => {
    let request;
    try {
      request = JSON.parse(line);
    } catch {
      request = null;
    }
    if (
      request === null ||
      typeof request !== 'object' ||
      typeof request.cell !== 'string' ||
      !TOKEN.test(request.cell) ||
      typeof request.code !== 'string'
    ) {
      diagnose(`request ignored: ${line.slice(0, 200)}`);
      return;
    }
    queue.push({ cell: request.cell, code: request.code });
    next();
  });
  requests.on('close', () => {
    closing = true;
    next();
  });

  send(startup, { k: 'ready' });
})();
