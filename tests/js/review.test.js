'use strict';
// Regressions found in review: notification fan-out, what the client holds,
// user code that throws, when callbacks run, same-page writes, options, loading.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const {after, before, describe, test} = require('node:test');
const {connect, freePort, loadClient, once, startServer} = require('./helpers/server');

const CLIENT = path.resolve(__dirname, '..', '..', 'core', 'backboneio', 'static', 'backbone.io.js');
let server;
const pages = [];
let channels = 0;

function page(options) {
  const Backbone = loadClient();
  pages.push(Backbone);
  if (options !== false) connect(Backbone, server.url, options);
  return Backbone;
}

function spec() {
  channels += 1;
  return {name: 'items', channel: `review-${channels}`};
}

// Fails instead of hanging when a promise never settles.
function within(promise, ms = 4000) {
  return Promise.race([promise, new Promise((resolve, reject) =>
    setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms))]);
}

function tick() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

// The client rethrows what user code threw asynchronously; collect it.
async function catching(fn) {
  const thrown = [];
  process.setUncaughtExceptionCaptureCallback((exc) => thrown.push(exc));
  try {
    await fn();
    await tick();
    await tick();
  } finally {
    process.setUncaughtExceptionCaptureCallback(null);
  }
  return thrown;
}

function created(collection, attrs) {
  return new Promise((resolve, reject) => collection.create(attrs, {
    wait: true, success: resolve, error: (m, err) => reject(err),
  }));
}

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const Backbone of pages) Backbone.io.disconnect();
  await server.stop();
});

describe('notifications reach each object once', () => {
  test('a collection whose model class has the backend hears each change once', async () => {
    const backend = spec();
    const reader = page();
    const Item = reader.Model.extend({backend});
    const mirror = new (reader.Collection.extend({model: Item, backend}))().bindBackend();
    let count = 0;
    mirror.on('backend:create', () => { count += 1; });
    await once(reader.io, 'listen');
    const writer = new (page().Collection)([], {backend});
    for (let i = 0; i < 3; i += 1) {
      const heard = once(mirror, 'backend:create');
      await created(writer, {n: i});
      await heard;
    }
    assert.equal(mirror.length, 3);
    assert.equal(count, 3);
  });

  test('a bound model in a collection updates itself; its collection hears it once', async () => {
    const backend = spec();
    const reader = page();
    const Item = reader.Model.extend({backend});
    const writer = new (page().Collection)([], {backend});
    const first = await created(writer, {title: 'a'});
    await created(writer, {title: 'b'});
    const list = new reader.Collection([], {model: Item, backend});
    await list.fetch();
    list.each((model) => model.bindBackend());
    const onModel = [];
    const onList = [];
    list.get(first.id).on('backend:patch', (attrs) => onModel.push(attrs.title));
    list.on('backend:patch', (attrs) => onList.push(attrs.title));
    const heard = once(list, 'backend:patch');
    await first.save({title: 'A'}, {patch: true});
    await heard;
    assert.equal(list.get(first.id).get('title'), 'A');
    assert.deepEqual(onModel, ['A']);
    assert.deepEqual(onList, ['A']);
  });

  test('a collection with no backend of its own hears its model class backend', async () => {
    const backend = spec();
    const reader = page();
    const Item = reader.Model.extend({backend});
    const list = new reader.Collection([{id: 'x1'}, {id: 'x2'}], {model: Item});
    let count = 0;
    list.on('backend:create', () => { count += 1; });
    await once(reader.io, 'listen');
    const heard = once(list, 'backend:create');
    await created(new (page().Collection)([], {backend}), {n: 1});
    await heard;
    assert.equal(count, 1);
  });
});

describe('what the client holds', () => {
  test('objects nobody listens to are not held, and idle channel links close', async () => {
    const backend = spec();
    const Backbone = page();
    const Items = Backbone.Collection.extend({backend});
    const Item = Backbone.Model.extend({backend});
    for (let i = 0; i < 5; i += 1) {
      await new Items().fetch();
      await new Item({n: i}).save();
    }
    await new Item({n: 'original'}).clone().save();
    await tick();
    assert.deepEqual(Backbone.io.links().filter((l) => l.channel === backend.channel), []);
  });

  test('listeners subscribe, and removing them (or unbindBackend) lets go', async () => {
    const backend = spec();
    const Backbone = page();
    const items = new Backbone.Collection([], {backend});
    const held = () => Backbone.io.links().filter((l) => l.channel === backend.channel)
      .map((l) => l.subscribers)[0] || 0;
    const view = {...Backbone.Events};
    view.listenTo(items, 'backend:create', () => {});
    items.bindBackend();
    assert.equal(held(), 1);
    view.stopListening();
    assert.equal(held(), 1);
    items.unbindBackend();
    assert.equal(held(), 0);
    items.on('add', () => {});  // not a notification: nothing to subscribe for
    assert.equal(held(), 0);
  });

  test('models removed from their collection (remove, reset) stop listening', async () => {
    const backend = spec();
    const Backbone = page();
    const Item = Backbone.Model.extend({backend});
    const list = new Backbone.Collection([{id: 1}, {id: 2}, {id: 3}], {model: Item});
    list.each((model) => model.bindBackend());
    const held = () => Backbone.io.links().filter((l) => l.channel === backend.channel)
      .map((l) => l.subscribers)[0] || 0;
    assert.equal(held(), 3);
    list.remove(1);
    assert.equal(held(), 2);
    list.reset();
    assert.equal(held(), 0);
  });
});

describe('user code that throws', () => {
  test("a throwing 'listen' listener does not keep syncs from being sent", async () => {
    const Backbone = page(false);
    Backbone.io.on('listen', () => { throw new Error('listener bug'); });
    connect(Backbone, server.url, {syncTimeout: 3000});
    let result;
    const thrown = await catching(async () => {
      result = await within(new Backbone.Collection([], {backend: spec()}).fetch());
    });
    assert.ok(Array.isArray(result));
    assert.deepEqual(thrown.map((e) => e.message), ['listener bug']);
  });

  test("a throwing 'request' listener neither breaks sync nor turns it into a Timeout", async () => {
    const Backbone = page();
    const model = new (Backbone.Model.extend({backend: spec()}))({title: 'x'});
    model.on('request', () => { throw new Error('request bug'); });
    const errors = [];
    let saved;
    const thrown = await catching(async () => {
      saved = await within(model.save(null, {timeout: 1500, error: (m, e) => errors.push(e)}));
    });
    assert.equal(saved.title, 'x');
    await new Promise((resolve) => setTimeout(resolve, 1600));
    assert.deepEqual(errors, []);
    assert.deepEqual(thrown.map((e) => e.message), ['request bug']);
  });

  test('disconnect() fails every waiting sync even if an error callback throws', async () => {
    const Backbone = page(false);
    const items = new Backbone.Collection([], {backend: spec()});
    const failed = [];
    const thrown = await catching(async () => {
      items.fetch({error: () => { failed.push(1); throw new Error('callback bug'); }});
      items.fetch({error: (c, err) => failed.push(err.name)});
      Backbone.io.disconnect();
    });
    assert.deepEqual(failed, [1, 'Unavailable']);
    assert.equal(thrown.length, 1);
  });
});

describe('when callbacks run', () => {
  test('an immediate failure is reported after save({wait: true}) restored the model', async () => {
    const Backbone = page();
    const Missing = Backbone.Model.extend({backend: 'nothing'});
    await new Missing().fetch().then(() => null, () => null);  // the namespace is refused
    const model = new Missing({title: 'old'});
    let returned = false;
    const seen = await new Promise((resolve) => {
      model.save({title: 'new'}, {wait: true, error: (m, err) => resolve({
        err: err.name, title: m.get('title'), returned,
      })});
      returned = true;
    });
    assert.deepEqual(seen, {err: 'ConnectionRefused', title: 'old', returned: true});
  });
});

describe('same-page writes', () => {
  test('other objects of the page on that backend and channel hear the change', async () => {
    const backend = spec();
    const Backbone = page();
    const mine = new Backbone.Collection([], {backend});
    const other = new Backbone.Collection([], {backend}).bindBackend();
    const heardMine = [];
    mine.on('backend:create', () => heardMine.push(1));
    await once(Backbone.io, 'listen');
    const heard = once(other, 'backend:create');
    const model = await created(mine, {title: 'here'});
    await within(heard);
    assert.deepEqual(other.pluck('title'), ['here']);
    assert.equal(mine.length, 1);
    assert.deepEqual(heardMine, []);  // the writer's own callbacks told it
    const patched = once(other, 'backend:patch');
    await model.save({title: 'there'}, {patch: true});
    await within(patched);
    assert.equal(other.get(model.id).get('title'), 'there');
  });
});

describe('listen refused', () => {
  test("'listen' fires only when the server accepted it", async () => {
    const Backbone = page();
    const listened = [];
    Backbone.io.on('listen', (name) => listened.push(name));
    const refused = once(Backbone.io, 'error');
    new Backbone.Collection([], {backend: 'private'}).bindBackend();
    const [err, where] = await refused;
    assert.equal(err.name, 'Unauthorized');
    assert.equal(where.backend, 'private');
    assert.deepEqual(listened.filter((name) => name === 'private'), []);
  });
});

describe('options', () => {
  test('jQuery ajax settings stay on the page', async () => {
    const Backbone = page();
    const echo = new Backbone.Collection([], {backend: 'echo'});
    await echo.fetch({
      parse: false, data: {q: 1}, username: 'u', password: 'p', headers: {A: 'b'},
      xhrFields: {withCredentials: true}, crossDomain: true, cache: false, async: true,
      global: false, statusCode: {404: 'x'}, traditional: true, mimeType: 'text/plain',
    });
    assert.deepEqual(echo.first().get('options'), {data: {q: 1}});
  });
});

describe('change events', () => {
  test('an update that removes attributes triggers one change', async () => {
    const backend = spec();
    const reader = page();
    const mirror = new reader.Collection([], {backend}).bindBackend();
    await once(reader.io, 'listen');
    const writer = new (page().Collection)([], {backend});
    const added = once(mirror, 'add');
    const model = await created(writer, {title: 'a', extra: 1});
    await added;
    const changes = [];
    mirror.first().on('change', (m) => changes.push(m.changedAttributes()));
    const updated = once(mirror, 'backend:update');
    model.unset('extra');
    await model.save({title: 'b'});
    await updated;
    assert.deepEqual(changes, [{title: 'b', extra: undefined}]);
    assert.deepEqual(mirror.first().attributes, {id: model.id, title: 'b'});
  });
});

describe('syncTimeout', () => {
  test('0, negative or non-numbers are refused', () => {
    const Backbone = page(false);
    for (const bad of [0, -1, 'soon', Infinity]) {
      assert.throws(() => Backbone.io.connect(server.url, {syncTimeout: bad}),
        /syncTimeout must be a positive number of milliseconds/);
    }
  });

  test('syncs made before connect() use its syncTimeout, and disconnect() keeps it', async () => {
    const port = await freePort();
    const Backbone = page(false);
    const items = new Backbone.Collection([], {backend: 'items'});
    const early = items.fetch().then(() => null, (e) => e);
    connect(Backbone, `http://127.0.0.1:${port}`, {syncTimeout: 200});
    const err = await within(early, 3000);
    assert.match(err.message, /within 200 ms/);
    Backbone.io.disconnect();
    const later = await within(items.fetch().then(() => null, (e) => e), 3000);
    assert.match(later.message, /within 200 ms/);
  });
});

describe('loading', () => {
  // A page of its own: a fresh Backbone run in a new context, then the client.
  function pageWith(globals) {
    const sandbox = {setTimeout, clearTimeout, Promise, console, _: require('underscore')};
    sandbox.globalThis = sandbox.self = sandbox;
    vm.createContext(sandbox);
    vm.runInContext(fs.readFileSync(require.resolve('backbone'), 'utf8'), sandbox);
    Object.assign(sandbox, globals);
    vm.runInContext(fs.readFileSync(CLIENT, 'utf8'), sandbox);
    return sandbox;
  }

  test('a script tag on a RequireJS page still sets Backbone.io', () => {
    const defined = [];
    const define = (deps, factory) => defined.push([deps, factory]);
    define.amd = {};
    const sandbox = pageWith({io: require('socket.io-client'), define});
    assert.equal(typeof sandbox.Backbone.io.connect, 'function');
    assert.equal(JSON.stringify(defined.map((d) => d[0])),
      '[["backbone","underscore","socket.io-client"]]');
    // RequireJS's copy is the same Backbone: patching it again changes nothing
    const sync = sandbox.Backbone.sync;
    assert.equal(defined[0][1](sandbox.Backbone, sandbox._, sandbox.io), sandbox.Backbone.io);
    assert.equal(sandbox.Backbone.sync, sync);
  });

  test("socket.io-client's module object is accepted as io", () => {
    const sandbox = pageWith({io: {default: require('socket.io-client')}});
    const socket = sandbox.Backbone.io.connect(server.url, {autoConnect: false});
    assert.equal(socket.nsp, '/');
    sandbox.Backbone.io.disconnect();
  });
});
