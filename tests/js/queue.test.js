'use strict';
// Safe writes in the client: idempotency keys, the queue of writes made while
// offline, retries, pending marks, conflicts, the persisted queue and token
// refresh, against a scripted Socket.IO server whose answers each test writes.

const assert = require('node:assert/strict');
const {afterEach, describe, test} = require('node:test');
const {connect, freePort, loadClient} = require('./helpers/server');
const {scriptedServer} = require('./helpers/scripted');

const FAST = {reconnectionDelay: 20, reconnectionDelayMax: 50};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const pages = [];
const servers = [];

function page(url, options) {
  const Backbone = loadClient();
  pages.push(Backbone);
  connect(Backbone, url, {...FAST, ...options});
  return Backbone;
}

async function until(check, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function pause(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let ids = 0;
// A server that stores nothing: creates get an id, writes answer their model.
function answering(extra = {}) {
  return {
    listen(socket, [channel], ack) { ack({event: 'backend', channel}); },
    sync(socket, request, ack) {
      const model = {...request.model};
      if (request.method === 'create') model.id = `m${(ids += 1)}`;
      ack(null, model);
    },
    ...extra,
  };
}

async function serve(handlers, options) {
  const server = await scriptedServer('items', handlers, options);
  servers.push(server);
  return server;
}

function track(model) {
  const marks = [];
  model.on('pending', (m, pending) => marks.push(pending));
  return marks;
}

afterEach(async () => {
  for (const Backbone of pages.splice(0)) Backbone.io.disconnect();
  for (const server of servers.splice(0)) await server.close();
  delete globalThis.localStorage;
});

describe('idempotency keys', () => {
  test('every write carries a fresh key; a read carries none', async () => {
    const server = await serve(answering());
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.fetch();
    const one = await items.create({title: 'one'}, {wait: true});
    await new Promise((resolve) => items.create({title: 'two'}, {wait: true, success: resolve}));
    await items.get(one.id).save({title: 'uno'});
    await items.get(one.id).destroy({wait: true});
    const [read, ...writes] = server.calls.sync;
    assert.equal(read.options.idempotencyKey, undefined);
    const keys = writes.map((request) => request.options.idempotencyKey);
    assert.deepEqual(writes.map((request) => request.method), ['create', 'create', 'update', 'delete']);
    for (const key of keys) assert.match(key, UUID);
    assert.equal(new Set(keys).size, 4);
  });

  test('a key given in the options is sent as it is', async () => {
    const server = await serve(answering());
    const Backbone = page(server.url);
    const model = new (Backbone.Model.extend({backend: 'items'}))({title: 'x'});
    await model.save(null, {idempotencyKey: 'order-42'});
    assert.equal(server.calls.sync[0].options.idempotencyKey, 'order-42');
  });

  test('without crypto.randomUUID the key is still a random version 4 UUID', () => {
    const saved = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
    Object.defineProperty(globalThis, 'crypto', {value: undefined, configurable: true, writable: true});
    try {
      const Backbone = loadClient();
      const keys = new Set([1, 2, 3].map(() => Backbone.io.idempotencyKey()));
      for (const key of keys) assert.match(key, UUID);
      assert.equal(keys.size, 3);
    } finally {
      Object.defineProperty(globalThis, 'crypto', saved);
    }
  });
});

describe('the queue of writes', () => {
  test('writes made while the server is unreachable wait, marked pending, then go in order', async () => {
    const port = await freePort();
    const Backbone = page(`http://127.0.0.1:${port}`, {syncTimeout: 100});
    const items = new Backbone.Collection([], {backend: 'items'});
    const errors = [];
    items.on('error', (model, err) => errors.push(err));
    const marks = [];
    items.on('pending', (model, pending) => marks.push([model.get('title'), pending]));
    const first = items.create({title: 'first'});
    first.save({title: 'first, edited'});       // on top of its pending create
    const second = items.create({title: 'second'});
    assert.equal(first.pending, true);
    assert.equal(second.pending, true);
    assert.deepEqual(marks, [['first', true], ['second', true]]);
    assert.equal(Backbone.io.pendingWrites().length, 3);
    await pause(400);  // past syncTimeout: an unreachable server is not a failure of the write
    assert.deepEqual(errors, []);

    const server = await serve(answering(), {port});
    await until(() => !first.pending && !second.pending, 'the writes answered');
    const sent = server.calls.sync;
    assert.deepEqual(sent.map((r) => [r.method, r.model.title]),
      [['create', 'first'], ['update', 'first, edited'], ['create', 'second']]);
    // The second save() of `first` became an update of the model its create made.
    assert.equal(sent[1].model.id, first.id);
    // Each model's mark clears once: after its last write is answered.
    assert.deepEqual(marks, [['first', true], ['second', true], ['first, edited', false],
      ['second', false]]);
    assert.deepEqual(errors, []);
    assert.deepEqual(Backbone.io.pendingWrites(), []);
    assert.equal(items.length, 2);
  });

  test('a write whose connection drops before the answer is sent again with its key', async () => {
    let attempts = 0;
    const server = await serve(answering({
      sync(socket, request, ack) {
        attempts += 1;
        if (attempts === 1) socket.conn.close();  // a network drop: socket.io reconnects
        else ack(null, {...request.model, id: 'only'});
      },
    }));
    const Backbone = page(server.url);
    const model = new (Backbone.Model.extend({backend: 'items'}))({title: 'once'});
    const saved = await model.save();
    assert.equal(saved.id, 'only');
    const [a, b] = server.calls.sync;
    assert.equal(server.calls.sync.length, 2);
    assert.equal(a.options.idempotencyKey, b.options.idempotencyKey);
    assert.equal(model.pending, false);
  });

  test('an unanswered attempt goes again with the same key, and only the first answer counts', async () => {
    let held = null;
    const server = await serve(answering({
      sync(socket, request, ack) {
        if (!held) {
          held = ack;  // no answer within syncTimeout
          return;
        }
        ack(null, {...request.model, id: 'x1', attempt: 2});
        held(null, {...request.model, id: 'x1', attempt: 1});
      },
    }));
    const Backbone = page(server.url, {syncTimeout: 150});
    const retries = [];
    Backbone.io.on('retry', (where, info) => retries.push(info));
    const model = new (Backbone.Model.extend({backend: 'items'}))({title: 'slow'});
    let successes = 0;
    await model.save(null, {success: () => { successes += 1; }});
    await pause(50);
    assert.equal(successes, 1);
    assert.equal(model.get('attempt'), 2);
    assert.equal(server.calls.sync.length, 2);
    assert.equal(server.calls.sync[0].options.idempotencyKey, server.calls.sync[1].options.idempotencyKey);
    assert.equal(retries.length, 1);
    assert.equal(retries[0].reason.name, 'Timeout');
  });

  test('Unavailable is tried again; a 4xx answer fails the write at once', async () => {
    const answers = [];
    const server = await serve(answering({
      sync(socket, request, ack) {
        answers.push(request.model.title);
        if (request.model.title === 'busy' && answers.length === 1) {
          ack({name: 'Unavailable', status: 503, message: 'the store is down'});
        } else if (request.model.title === 'bad') {
          ack({name: 'BadRequest', status: 400, message: 'no'});
        } else {
          ack(null, {...request.model, id: request.model.title});
        }
      },
    }));
    const Backbone = page(server.url);
    const Item = Backbone.Model.extend({backend: 'items'});
    const busy = new Item({title: 'busy'});
    await busy.save();
    assert.equal(busy.id, 'busy');
    const bad = new Item({title: 'bad'});
    const marks = track(bad);
    const failed = await new Promise((resolve) => {
      bad.on('error', (model, err) => resolve(err));
      bad.save();
    });
    assert.equal(failed.name, 'BadRequest');
    assert.equal(bad.pending, false);
    assert.deepEqual(marks, [true, false]);
    assert.deepEqual(answers, ['busy', 'busy', 'bad']);
  });

  test('a write is given up after giveUpAfter with Timeout', async () => {
    const port = await freePort();
    const Backbone = page(`http://127.0.0.1:${port}`, {giveUpAfter: 300});
    const model = new (Backbone.Model.extend({backend: 'items'}))({title: 'lost'});
    const err = await model.save().then(() => null, (e) => e);
    assert.equal(err.name, 'Timeout');
    assert.match(err.message, /Could not reach backend 'items' within 300 ms/);
    assert.equal(model.pending, false);
  });

  test('with retryWrites: false a dropped write fails with Unavailable, as before', async () => {
    const server = await serve(answering({
      sync(socket) { socket.conn.close(); },
    }));
    const Backbone = page(server.url, {retryWrites: false});
    const model = new (Backbone.Model.extend({backend: 'items'}))({title: 'x'});
    const err = await model.save().then(() => null, (e) => e);
    assert.equal(err.name, 'Unavailable');
    assert.equal(server.calls.sync.length, 1);
  });

  test('bad write options are refused by connect()', () => {
    const Backbone = loadClient();
    const cases = [
      [{retryWrites: 'yes'}, /retryWrites must be true or false/],
      [{giveUpAfter: 0}, /giveUpAfter must be a positive number/],
      [{onConflict: 'merge'}, /onConflict must be 'keep' or 'server'/],
      [{persistQueue: 3}, /persistQueue must be true, false or a localStorage key/],
      [{refreshToken: 'abc'}, /refreshToken must be a function/],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => Backbone.io.connect('http://127.0.0.1:9', options), message);
    }
  });
});

describe('versions and conflicts', () => {
  function versioned(conflicts) {
    let version = 1;
    return answering({
      sync(socket, request, ack) {
        if (conflicts.includes(request.model.title)) {
          ack({name: 'Conflict', status: 409, message: 'changed since it was read',
            current: {id: request.model.id, title: 'theirs', _version: 7}});
          return;
        }
        if (request.model._version !== version) {
          ack({name: 'Conflict', status: 409, message: `at ${version}`, current: {}});
          return;
        }
        version += 1;
        ack(null, {...request.model, _version: version});
      },
    });
  }

  test('two saves made offline: the second is made from the version the first produced', async () => {
    const port = await freePort();
    const Backbone = page(`http://127.0.0.1:${port}`);
    const model = new (Backbone.Model.extend({backend: 'items'}))({id: 'v', title: 'a', _version: 1});
    model.save({title: 'b'});
    const last = model.save({title: 'c'});
    const server = await serve(versioned([]), {port});
    await last;
    assert.deepEqual(server.calls.sync.map((r) => [r.model.title, r.model._version]),
      [['b', 1], ['c', 2]]);
    assert.equal(model.get('_version'), 3);
  });

  test("on Conflict the error carries the server's copy; by default the page keeps its own", async () => {
    const server = await serve(versioned(['mine']));
    const Backbone = page(server.url);
    const model = new (Backbone.Model.extend({backend: 'items'}))({id: 'c', title: 'old', _version: 1});
    const err = await model.save({title: 'mine'}).then(() => null, (e) => e);
    assert.equal(err.name, 'Conflict');
    assert.deepEqual(err.current, {id: 'c', title: 'theirs', _version: 7});
    assert.equal(model.get('title'), 'mine');
  });

  test("onConflict: 'server' replaces the model with the server's copy before the error", async () => {
    const server = await serve(versioned(['mine']));
    const Backbone = page(server.url, {onConflict: 'server'});
    const model = new (Backbone.Model.extend({backend: 'items'}))({id: 'c', title: 'old', local: 1, _version: 1});
    const seen = await new Promise((resolve) => {
      model.on('error', (m) => resolve(m.toJSON()));
      model.save({title: 'mine'});
    });
    assert.deepEqual(seen, {id: 'c', title: 'theirs', _version: 7});
    // Per call, 'keep' wins over the connect() default.
    await model.save({title: 'mine'}, {onConflict: 'keep'}).then(null, () => null);
    assert.equal(model.get('title'), 'mine');
  });
});

describe('the persisted queue', () => {
  function memoryStorage() {
    const data = new Map();
    return {
      getItem: (key) => (data.has(key) ? data.get(key) : null),
      setItem: (key, value) => data.set(key, String(value)),
      removeItem: (key) => data.delete(key),
      data,
    };
  }

  test('off by default: nothing is written to localStorage', async () => {
    globalThis.localStorage = memoryStorage();
    const port = await freePort();
    const Backbone = page(`http://127.0.0.1:${port}`);
    new (Backbone.Model.extend({backend: 'items'}))({title: 'x'}).save();
    assert.equal(globalThis.localStorage.data.size, 0);
  });

  test('with persistQueue the next page sends what the last one could not, with the same keys', async () => {
    globalThis.localStorage = memoryStorage();
    const port = await freePort();
    const before = page(`http://127.0.0.1:${port}`, {persistQueue: true});
    const Items = before.Collection.extend({backend: 'items'});
    const items = new Items();
    items.create({title: 'typed offline'});
    items.create({title: 'and this'});
    const saved = JSON.parse(globalThis.localStorage.getItem('backboneio.queue'));
    assert.deepEqual(saved.map((item) => item.request.model.title), ['typed offline', 'and this']);
    // The page goes away before the server is back. (Its disconnect() fails
    // the writes and so empties the storage; a reload runs no such code.)
    const snapshot = globalThis.localStorage.getItem('backboneio.queue');
    before.io.disconnect();
    globalThis.localStorage.setItem('backboneio.queue', snapshot);
    const server = await serve(answering(), {port});

    const after = page(server.url, {persistQueue: true});
    const mirror = new (after.Collection.extend({backend: 'items'}))().bindBackend();
    await until(() => mirror.length === 2, 'the restored writes applied');
    assert.deepEqual(mirror.pluck('title'), ['typed offline', 'and this']);
    const keys = saved.map((item) => item.request.options.idempotencyKey);
    const sentKeys = server.calls.sync.map((r) => r.options.idempotencyKey);
    for (const key of keys) assert.ok(sentKeys.includes(key));
    await until(() => globalThis.localStorage.getItem('backboneio.queue') === null,
      'the stored queue emptied');
  });
});

describe('token refresh', () => {
  test('refresh(token) hands it to every connected backend and to later reconnects', async () => {
    const server = await serve(answering({
      refresh(socket, auth, ack) { ack(null, {expires_at: 4102444800}); },
    }));
    const Backbone = page(server.url, {auth: {token: 'first'}});
    await new (Backbone.Collection.extend({backend: 'items'}))().fetch();
    const refreshed = [];
    Backbone.io.on('refresh', (info) => refreshed.push(info));
    const info = await Backbone.io.refresh('second');
    assert.deepEqual(info, {expiresAt: 4102444800});
    assert.deepEqual(refreshed, [info]);
    assert.deepEqual(server.calls.refresh, [{token: 'second'}]);
    // A reconnect presents the new token.
    server.socket().conn.close();
    await until(() => server.calls.auth.length >= 2, 'the reconnect');
    assert.deepEqual(server.calls.auth.at(-1), {token: 'second'});
  });

  test('a refused refresh rejects with the server error and is announced', async () => {
    const server = await serve(answering({
      refresh(socket, auth, ack) {
        ack({error: {name: 'Unauthorized', status: 401, message: 'Token signature is invalid'}});
      },
    }));
    const Backbone = page(server.url, {auth: {token: 'first'}});
    await new (Backbone.Collection.extend({backend: 'items'}))().fetch();
    const announced = [];
    Backbone.io.on('error', (err, where) => announced.push([err.name, where.refresh]));
    const err = await Backbone.io.refresh('forged').then(() => null, (e) => e);
    assert.equal(err.name, 'Unauthorized');
    assert.equal(err.message, 'Token signature is invalid');
    assert.deepEqual(announced, [['Unauthorized', true]]);
    assert.throws(() => Backbone.io.refresh(42), /takes a token/);
  });

  test('refreshToken is asked for a new token before the exp of the current one', async () => {
    const server = await serve(answering());
    const exp = Math.floor(Date.now() / 1000) + 2;
    const jwt = (claims) => ['e30', Buffer.from(JSON.stringify(claims)).toString('base64url'), 'sig'].join('.');
    let asked = 0;
    const Backbone = page(server.url, {
      auth: {token: jwt({sub: 'ann', exp})},
      refreshBefore: 1000,
      refreshToken: () => {
        asked += 1;
        return Promise.resolve(jwt({sub: 'ann', exp: exp + 3600}));
      },
    });
    await new (Backbone.Collection.extend({backend: 'items'}))().fetch();
    await until(() => server.calls.refresh.length === 1, 'the refresh', 4000);
    assert.equal(asked, 1);
    assert.ok(Date.now() < exp * 1000, 'refreshed before exp');
    assert.match(server.calls.refresh[0].token, /^e30\./);
  });
});
