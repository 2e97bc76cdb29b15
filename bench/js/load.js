// The benchmark's load generator: real socket.io-client connections over
// WebSocket only (offering permessage-deflate, as browsers do), against a
// server speaking either Backbone.IO's wire (backboneio, the bare peer) or
// Feathers' own socket protocol.
//
// Usage: node load.js '<json job>'; prints one JSON line with the results.
// The job names a scenario (roundtrip, fanout, idle, resume), the server's
// URL, protocol and pid. CPU is read from /proc over the measured window
// only: the server's, this process's, and what everything else on the
// machine used meanwhile, so a noisy or load-bound run shows in the results.
'use strict';

const fs = require('fs');
const { io } = require('socket.io-client');

const job = JSON.parse(process.argv[2]);
const CLK_TCK = job.clkTck || 100;
const PAYLOAD = 'The quick brown fox jumps over the lazy dog. '.repeat(2).trim();

// ---------------------------------------------------------------- protocols

const protocols = {
  backbone: {
    namespace: '/messages',
    create(socket, model, done) {
      socket.emit('sync', { method: 'create', model, options: {} }, done);
    },
    read(socket, done) {
      socket.emit('sync', { method: 'read', model: {}, options: {} }, done);
    },
    listen(socket, done, since) {
      if (since === undefined) socket.emit('listen', null, (answer) => done(answer));
      else socket.emit('listen', null, { since }, (answer) => done(answer));
    },
    onNotify(socket, handler) {
      socket.on('synced', (method, model, position) => handler(model, position));
    },
    isError(answer) {
      return answer && typeof answer === 'object' && 'error' in answer;
    },
  },
  feathers: {
    namespace: '/',
    create(socket, model, done) {
      socket.emit('create', 'messages', model, {}, done);
    },
    read(socket, done) {
      socket.emit('find', 'messages', {}, done);
    },
    listen(socket, done) {
      done({}); // every connection joins the "everybody" channel when it connects
    },
    onNotify(socket, handler) {
      socket.on('messages created', (model) => handler(model, null));
    },
    isError() {
      return false;
    },
  },
};
const proto = protocols[job.protocol];

// ---------------------------------------------------------------- /proc

function ticks(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  } catch {
    return NaN;
  }
}

function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) : NaN;
}

function cores() {
  const out = {};
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    if (!/^cpu\d* /.test(line)) continue;
    const [name, ...rest] = line.trim().split(/\s+/);
    const v = rest.map(Number);
    // user nice system idle iowait irq softirq steal: busy leaves out idle,
    // iowait, and softirq (mostly this benchmark's own loopback traffic).
    out[name] = { busy: v[0] + v[1] + v[2] + v[5] + v[7], softirq: v[6] };
  }
  return out;
}

// A cluster (bench/cluster.py) names every process: job.serverPids, job.urls.
const serverPids = job.serverPids || [job.serverPid];

function cpuSnapshot() {
  const each = serverPids.map(ticks);
  return {
    at: process.hrtime.bigint(),
    cores: cores(),
    server: each.reduce((a, b) => a + b, 0),
    each,
    self: ticks('self'),
  };
}

function cpuUsage(start, end) {
  const seconds = Number(end.at - start.at) / 1e9;
  const pct = (t) => (100 * t) / CLK_TCK / seconds;
  const server = end.server - start.server;
  const self = end.self - start.self;
  const busy = end.cores.cpu.busy - start.cores.cpu.busy;
  const perCore = {};
  for (const name of Object.keys(end.cores)) {
    if (name === 'cpu') continue;
    perCore[name] = pct(end.cores[name].busy - start.cores[name].busy);
  }
  return {
    seconds,
    serverPct: pct(server),
    loadPct: pct(self),
    otherPct: Math.max(0, pct(busy - server - self)),
    softirqPct: pct(end.cores.cpu.softirq - start.cores.cpu.softirq),
    perCorePct: perCore,
    serverCpuSeconds: server / CLK_TCK,
    perServerCpuSeconds: end.each.map((t, i) => (t - start.each[i]) / CLK_TCK),
  };
}

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let turn = 0;
function nextUrl() {
  if (!job.urls) return job.url;
  turn += 1;
  return job.urls[(turn - 1) % job.urls.length];
}

function connect(timeoutMs = 20000, url = nextUrl()) {
  return new Promise((resolve, reject) => {
    const socket = io(url + proto.namespace, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      timeout: timeoutMs,
    });
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

function listen(socket, since) {
  return new Promise((resolve, reject) => {
    proto.listen(
      socket,
      (answer) => (proto.isError(answer) ? reject(new Error(JSON.stringify(answer))) : resolve(answer)),
      since
    );
  });
}

function create(socket, model) {
  return new Promise((resolve, reject) => {
    proto.create(socket, model, (err, result) => (err ? reject(new Error(JSON.stringify(err))) : resolve(result)));
  });
}

// Opens ``count`` connections, at most ``concurrency`` at a time; stops
// early after ``maxFailures`` failures (a server that stopped accepting would
// otherwise hold every remaining attempt for the whole timeout).
async function connectMany(count, { concurrency = 100, timeoutMs = 20000, maxFailures = Infinity, onSocket } = {}) {
  const sockets = [];
  let started = 0;
  let failures = 0;
  let firstError = null;
  async function worker() {
    while (started < count && failures < maxFailures) {
      started += 1;
      try {
        const socket = await connect(timeoutMs);
        if (onSocket) await onSocket(socket);
        sockets.push(socket);
      } catch (err) {
        failures += 1;
        firstError = firstError || String(err && err.message ? err.message : err);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { sockets, failures, firstError, attempted: started };
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function negotiated(socket) {
  const ws = socket.io.engine && socket.io.engine.transport && socket.io.engine.transport.ws;
  return ws && typeof ws.extensions === 'string' ? ws.extensions : '';
}

function closeAll(sockets) {
  for (const socket of sockets) socket.close();
}

// ---------------------------------------------------------------- scenarios

// N clients in a closed loop: each sends a create, waits for its ack, sends
// the next. Every create is broadcast to the other N-1, who count it.
async function roundtrip() {
  const n = job.clients;
  let phase = 'warmup';
  let ops = 0;
  let errors = 0;
  let notified = 0;
  const latencies = [];
  const { sockets, failures, firstError } = await connectMany(n, {
    onSocket: async (socket) => {
      proto.onNotify(socket, () => {
        if (phase === 'measure') notified += 1;
      });
      await listen(socket);
    },
  });
  if (failures) throw new Error(`only ${sockets.length} of ${n} clients connected: ${firstError}`);
  let running = 0;
  let drained;
  const allDone = new Promise((resolve) => (drained = resolve));
  function loop(socket, index) {
    let k = 0;
    running += 1;
    const next = () => {
      if (phase === 'stop') {
        running -= 1;
        if (running === 0) drained();
        return;
      }
      const sent = process.hrtime.bigint();
      k += 1;
      proto.create(socket, { text: PAYLOAD, author: `client-${index}`, n: k }, (err) => {
        if (phase === 'measure') {
          if (err) errors += 1;
          else {
            ops += 1;
            latencies.push(Number(process.hrtime.bigint() - sent) / 1e6);
          }
        }
        next();
      });
    };
    next();
  }
  sockets.forEach(loop);
  await sleep(job.warmup * 1000);
  phase = 'measure';
  process.stderr.write('measuring\n'); // a profiler attaches now
  const start = cpuSnapshot();
  await sleep(job.duration * 1000);
  const end = cpuSnapshot();
  phase = 'stop';
  await Promise.race([allDone, sleep(5000)]);
  const cpu = cpuUsage(start, end);
  latencies.sort((a, b) => a - b);
  const result = {
    clients: n,
    ops,
    errors,
    opsPerSec: ops / cpu.seconds,
    p50ms: percentile(latencies, 50),
    p99ms: percentile(latencies, 99),
    notified,
    // each create should reach the N-1 others: a server that drops them shows here
    notifiedPerOp: ops ? notified / ops : null,
    serverCpuUsPerOp: ops ? (cpu.serverCpuSeconds * 1e6) / ops : null,
    extensions: negotiated(sockets[0]),
    cpu,
  };
  closeAll(sockets);
  return result;
}

// One writer, L listeners. The writer keeps at most ``window`` writes not yet
// delivered to every listener, so queues cannot grow without bound.
async function fanout() {
  const L = job.listeners;
  const windowWrites = job.window || 4;
  let phase = 'warmup';
  let delivered = 0;
  let deliveredTotal = 0;
  const sentAt = new Map();
  const latencies = [];
  let wake = null;
  const { sockets, failures, firstError } = await connectMany(L, {
    concurrency: 100,
    onSocket: async (socket) => {
      proto.onNotify(socket, (model) => {
        deliveredTotal += 1;
        if (phase === 'measure') {
          delivered += 1;
          const at = sentAt.get(model.n);
          if (at !== undefined && latencies.length < 2e6)
            latencies.push(Number(process.hrtime.bigint() - at) / 1e6);
        }
        if (wake) {
          const w = wake;
          wake = null;
          w();
        }
      });
      await listen(socket);
    },
  });
  if (failures) throw new Error(`only ${sockets.length} of ${L} listeners connected: ${firstError}`);
  const writer = await connect(20000, job.urls ? job.urls[0] : job.url);
  await listen(writer);
  let sent = 0;
  let writes = 0;
  const writerDone = (async () => {
    while (phase !== 'stop') {
      while (sent * L - deliveredTotal > windowWrites * L && phase !== 'stop') {
        await new Promise((resolve) => (wake = resolve));
      }
      if (phase === 'stop') break;
      sent += 1;
      sentAt.set(sent, process.hrtime.bigint());
      if (sentAt.size > 10000) sentAt.delete(sent - 10000);
      await create(writer, { text: PAYLOAD, author: 'writer', n: sent });
      if (phase === 'measure') writes += 1;
    }
  })();
  await sleep(job.warmup * 1000);
  phase = 'measure';
  process.stderr.write('measuring\n'); // a profiler attaches now
  const start = cpuSnapshot();
  await sleep(job.duration * 1000);
  const end = cpuSnapshot();
  phase = 'stop';
  if (wake) wake();
  await Promise.race([writerDone, sleep(5000)]);
  const cpu = cpuUsage(start, end);
  latencies.sort((a, b) => a - b);
  const result = {
    listeners: L,
    writes,
    delivered,
    deliveriesPerSec: delivered / cpu.seconds,
    p50ms: percentile(latencies, 50),
    p99ms: percentile(latencies, 99),
    serverCpuUsPerDelivery: delivered ? (cpu.serverCpuSeconds * 1e6) / delivered : null,
    extensions: negotiated(writer),
    cpu,
  };
  closeAll([...sockets, writer]);
  return result;
}

// Idle connections: how many the server holds, and its RSS per connection.
async function idle() {
  const N = job.connections;
  await sleep(300);
  const rssBefore = rssKiB(job.serverPid);
  const began = process.hrtime.bigint();
  let dropped = 0;
  const { sockets, failures, firstError, attempted } = await connectMany(N, {
    concurrency: job.concurrency || 200,
    timeoutMs: (job.connectTimeout || 10) * 1000,
    maxFailures: job.maxFailures || 200,
    onSocket: async (socket) => {
      socket.on('disconnect', () => {
        dropped += 1;
      });
      await listen(socket);
    },
  });
  const connectSeconds = Number(process.hrtime.bigint() - began) / 1e9;
  process.stderr.write('measuring\n'); // all connected: a memory probe looks now
  const start = cpuSnapshot();
  await sleep((job.hold || 2) * 1000);
  const end = cpuSnapshot();
  const held = sockets.length - dropped;
  const rssAfter = rssKiB(job.serverPid);
  const result = {
    connections: N,
    attempted,
    connected: sockets.length,
    held,
    failures,
    firstError,
    connectSeconds,
    connectsPerSec: sockets.length / connectSeconds,
    rssBeforeKiB: rssBefore,
    rssAfterKiB: rssAfter,
    kibPerConnection: held ? (rssAfter - rssBefore) / held : null,
    extensions: sockets.length ? negotiated(sockets[0]) : '',
    cpu: cpuUsage(start, end),
  };
  closeAll(sockets);
  return result;
}

// Time to resume: a client listens, goes away while another client makes
// ``missed`` creates, then reconnects and listens with the positions it had.
// The replayed entries arrive as ``synced`` before the listen's ack.
async function resume() {
  const missed = job.missed;
  const away = await connect();
  const first = await listen(away);
  if (!first || !Array.isArray(first.positions)) {
    closeAll([away]);
    return { supported: false, answer: first };
  }
  const positions = first.positions;
  away.close();
  const writer = await connect();
  await listen(writer);
  const writeStart = process.hrtime.bigint();
  for (let k = 1; k <= missed; k += 1) await create(writer, { text: PAYLOAD, author: 'writer', n: k });
  const writeSeconds = Number(process.hrtime.bigint() - writeStart) / 1e9;

  const connectStart = process.hrtime.bigint();
  const back = await connect();
  const connected = process.hrtime.bigint();
  const replayed = [];
  proto.onNotify(back, (model, position) => replayed.push(position ? position.seq : null));
  const start = cpuSnapshot();
  const answer = await listen(back, positions);
  const acked = process.hrtime.bigint();
  const end = cpuSnapshot();
  const inOrder = replayed.every((seq, i) => i === 0 || seq === replayed[i - 1] + 1);

  // For scale: the refetch a client without resume would need.
  const readStart = process.hrtime.bigint();
  const models = await new Promise((resolve, reject) =>
    proto.read(back, (err, result) => (err ? reject(new Error(JSON.stringify(err))) : resolve(result)))
  );
  const readMs = Number(process.hrtime.bigint() - readStart) / 1e6;
  closeAll([back, writer]);
  return {
    supported: true,
    missed,
    replayed: replayed.length,
    inOrder,
    recovered: answer.recovered,
    resumeMs: Number(acked - connected) / 1e6,
    reconnectAndResumeMs: Number(acked - connectStart) / 1e6,
    refetchMs: readMs,
    refetchModels: Array.isArray(models) ? models.length : null,
    writesPerSec: missed / writeSeconds,
    cpu: cpuUsage(start, end),
  };
}

// Live queries (bench/live.py): ``sockets`` sockets hold ``subscriptions`` live
// queries between them (mode ``shared``: one query for all, ``distinct``: one
// owner each), or just listen (mode ``notify``), or do nothing (``none``).
// One writer creates models, each with the highest ``n`` so far, so each one
// enters every shared window (and pushes the 10th out), or the one distinct
// window of its owner, or reaches every listener. The writer keeps at most
// ``window`` writes whose enters have not all arrived.
async function live() {
  const mode = job.mode;
  const S = mode === 'shared' || mode === 'distinct' ? job.subscriptions : 0;
  const perWrite = mode === 'shared' ? S : mode === 'distinct' ? 1 : mode === 'notify' ? job.sockets : 0;
  const windowWrites = job.window || 4;
  const n = mode === 'none' ? 0 : job.sockets;
  let phase = 'warmup';
  let heard = 0; // enters (or synced) heard in all
  let events = 0; // every query event heard while measuring
  let wake = null;
  const woken = () => {
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  let subscribed = 0;
  const { sockets, failures, firstError } = await connectMany(n, {
    onSocket: async (socket) => {
      socket.on('query', (id, kind) => {
        if (phase === 'measure') events += 1;
        if (kind === 'enter') heard += 1;
        woken();
      });
      proto.onNotify(socket, () => {
        if (phase === 'measure') events += 1;
        heard += 1;
        woken();
      });
      if (mode === 'notify') await listen(socket);
    },
  });
  if (failures) throw new Error(`only ${sockets.length} of ${n} sockets connected: ${firstError}`);
  for (let k = 0; k < S; k += 1) {
    const socket = sockets[k % sockets.length];
    const query = mode === 'shared' ? {} : { owner: `u${k}` };
    Object.assign(query, { $sort: { n: -1 }, $limit: 10 });
    const answer = await new Promise((resolve) => socket.emit('subscribe', { id: `q${k}`, query }, (err, ack) => resolve(err || ack)));
    if (answer && answer.error) throw new Error(JSON.stringify(answer));
    subscribed += 1;
  }
  const writer = await connect(20000, job.url);
  let sent = 0;
  let writes = 0;
  const latencies = [];
  const writerDone = (async () => {
    while (phase !== 'stop') {
      while (sent * perWrite - heard > windowWrites * perWrite && phase !== 'stop') {
        await new Promise((resolve) => (wake = resolve));
      }
      if (phase === 'stop') break;
      sent += 1;
      const began = process.hrtime.bigint();
      const owner = `u${S ? sent % S : 0}`;
      await create(writer, { text: PAYLOAD, owner, n: sent });
      if (phase === 'measure') {
        writes += 1;
        latencies.push(Number(process.hrtime.bigint() - began) / 1e6);
      }
    }
  })();
  await sleep(job.warmup * 1000);
  phase = 'measure';
  process.stderr.write('measuring\n');
  const start = cpuSnapshot();
  await sleep(job.duration * 1000);
  const end = cpuSnapshot();
  phase = 'stop';
  woken();
  await Promise.race([writerDone, sleep(5000)]);
  const cpu = cpuUsage(start, end);
  latencies.sort((a, b) => a - b);
  const result = {
    mode,
    sockets: n,
    subscriptions: subscribed,
    writes,
    writesPerSec: writes / cpu.seconds,
    eventsPerSec: events / cpu.seconds,
    eventsPerWrite: writes ? events / writes : null,
    p50ms: percentile(latencies, 50),
    serverCpuUsPerWrite: writes ? (cpu.serverCpuSeconds * 1e6) / writes : null,
    extensions: sockets.length ? negotiated(sockets[0]) : negotiated(writer),
    cpu,
  };
  closeAll([...sockets, writer]);
  return result;
}

const scenarios = { roundtrip, fanout, idle, resume, live };

(async () => {
  const deadline = setTimeout(() => {
    console.log(JSON.stringify({ error: `load generator timed out after ${job.timeout}s` }));
    process.exit(2);
  }, (job.timeout || 300) * 1000);
  try {
    const result = await scenarios[job.scenario]();
    console.log(JSON.stringify(result));
  } catch (err) {
    console.log(JSON.stringify({ error: String(err && err.stack ? err.stack : err) }));
  }
  clearTimeout(deadline);
  process.exit(0);
})();
