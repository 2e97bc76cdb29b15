'use strict';
// Starts a real `backboneio serve` for the node tests and loads fresh copies
// of Backbone + backbone.io.js, each copy acting as one browser page.

const {spawn} = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const HERE = path.resolve(__dirname, '..');
const ROOT = path.resolve(HERE, '..', '..');
const CLIENT = path.join(ROOT, 'core', 'backboneio', 'static', 'backbone.io.js');
const PYTHON = process.env.PYTHON || 'python3';

// backbone.io.js lives outside this package and require()s backbone,
// underscore and socket.io-client: let it find ours.
process.env.NODE_PATH = [path.join(HERE, 'node_modules'), process.env.NODE_PATH]
  .filter(Boolean).join(path.delimiter);
require('node:module').Module._initPaths();

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function startServer({settings = 'backboneio_js_settings', port} = {}) {
  port = port || (await freePort());
  const env = {
    ...process.env,
    PYTHONPATH: [path.join(HERE, 'fixtures'), path.join(ROOT, 'core'), process.env.PYTHONPATH || '']
      .join(path.delimiter),
    PYTHONUNBUFFERED: '1',
  };
  const proc = spawn(PYTHON, ['-m', 'backboneio', 'serve', '--settings', settings,
    '--host', '127.0.0.1', '--port', String(port)], {env, stdio: ['ignore', 'pipe', 'pipe']});
  let log = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + log)), 20000);
    const onData = (chunk) => {
      log += chunk;
      if (log.includes('backboneio serving on')) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${log}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stop() {
      return new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      });
    },
  };
}

// A fresh Backbone with backbone.io.js applied: what one page would have.
function loadClient() {
  for (const id of Object.keys(require.cache)) {
    if (id === CLIENT || id.includes(`${path.sep}backbone${path.sep}`)) delete require.cache[id];
  }
  require(CLIENT);
  return require('backbone');
}

// forceNew: each copy gets its own connection, as separate pages would.
function connect(Backbone, url, options = {}) {
  return Backbone.io.connect(url, {forceNew: true, transports: ['websocket'], ...options});
}

// The next `event` of a Backbone.Events or EventEmitter object; a test that
// waits for an event that never comes fails instead of hanging.
function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} event within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

module.exports = {startServer, loadClient, connect, once, freePort};
