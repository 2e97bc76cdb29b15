'use strict';
// backbone.io.js in node against a real backboneio server: each loadClient()
// is one "page" with its own Backbone and its own connection.

const assert = require('node:assert/strict');
const {after, before, describe, test} = require('node:test');
const {connect, freePort, loadClient, once, startServer} = require('./helpers/server');

let server;
const pages = [];

function page(options) {
  const Backbone = loadClient();
  pages.push(Backbone);
  if (options !== false) connect(Backbone, server.url, options);
  return Backbone;
}

// Resolves with what the error callback got, so a test can assert on both.
function failure(fn) {
  return new Promise((resolve) => fn((model, err) => resolve(err)));
}

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const Backbone of pages) Backbone.io.disconnect();
  await server.stop();
});

describe('sync', () => {
  test('create, read, update, patch and delete go through the backend', async () => {
    const Backbone = page();
    const Items = Backbone.Collection.extend({backend: {name: 'items', channel: 'crud'}});
    const items = new Items();
    const item = await new Promise((resolve, reject) => {
      const model = items.create({title: 'one', done: false}, {
        wait: true, success: resolve, error: (m, err) => reject(err),
      });
      assert.ok(model);
    });
    assert.equal(typeof item.id, 'string');

    await item.save({title: 'uno'});
    await item.save({done: true}, {patch: true});
    const copy = new (Backbone.Model.extend({backend: 'items'}))({id: item.id});
    await copy.fetch();
    assert.deepEqual(copy.attributes, {id: item.id, title: 'uno', done: true});

    await item.destroy({wait: true});
    assert.equal(items.length, 0);
    const err = await copy.fetch().then(() => null, (e) => e);
    assert.equal(err.name, 'NotFound');
    assert.equal(err.status, 404);
  });

  test('a server error reaches the error callback and the promise', async () => {
    const Backbone = page();
    const model = new (Backbone.Model.extend({backend: 'items'}))({id: 'missing'});
    let promise;
    const fromCallback = await failure((error) => { promise = model.fetch({error}); });
    const fromPromise = await promise.then(() => null, (e) => e);
    assert.deepEqual(fromCallback, {name: 'NotFound', status: 404, id: 'missing',
      message: fromCallback.message});
    assert.match(fromCallback.message, /missing/);
    assert.equal(fromCallback.name, 'NotFound');
    assert.deepEqual(fromPromise, fromCallback);
  });

  test('without jQuery the promise is a native Promise', () => {
    const Backbone = page();
    const result = new Backbone.Collection([], {backend: 'items'}).fetch();
    assert.ok(result instanceof Promise);
    return result;
  });

  test('only JSON options reach the server, never callbacks or the collection', async () => {
    const Backbone = page();
    const echo = new Backbone.Collection([], {backend: 'echo'});
    const seen = {};
    await echo.fetch({
      data: {kind: 'news', $limit: 2},
      custom: {nested: true, skip: () => 1},
      when: new Date(0),
      success(collection, resp) { seen.resp = resp; },
      error() {},
      parse: false,
    });
    // parse: false keeps the echo as one model's attributes
    const options = echo.first().get('options');
    assert.deepEqual(options, {
      data: {kind: 'news', $limit: 2},
      custom: {nested: true},
      when: '1970-01-01T00:00:00.000Z',
    });
    assert.equal(echo.first().get('method'), 'read');
  });

  test('patch sends the changed attributes plus the id', async () => {
    const Backbone = page();
    const Echoed = Backbone.Model.extend({backend: 'echo'});
    const model = new Echoed({id: 7, title: 'a', body: 'long text'});
    const answer = await model.save({title: 'b'}, {patch: true, parse: false});
    assert.equal(answer.method, 'patch');
    assert.deepEqual(answer.model, {id: 7, title: 'b'});
  });

  test('a custom idAttribute is used for patch and for bindBackend', async () => {
    const Backbone = page();
    const Doc = Backbone.Model.extend({idAttribute: '_id'});
    const Docs = Backbone.Collection.extend({model: Doc, backend: {name: 'mongo', channel: 'ids'}});
    const other = page();
    const theirs = new (other.Collection.extend({
      model: other.Model.extend({idAttribute: '_id'}),
      backend: {name: 'mongo', channel: 'ids'},
    }))().bindBackend();
    await once(other.io, 'listen');
    const mine = new Docs();
    const added = once(theirs, 'add');
    const doc = await new Promise((resolve) => mine.create({n: 1}, {wait: true, success: resolve}));
    await added;
    assert.equal(theirs.get(doc.id).get('n'), 1);
    const changed = once(theirs, 'change:n');
    await doc.save({n: 2}, {patch: true});
    await changed;
    assert.equal(theirs.get(doc.id).get('n'), 2);
  });
});

describe('connection', () => {
  test('syncs made before connect() are sent once it is called', async () => {
    const Backbone = page(false);
    const items = new Backbone.Collection([], {backend: 'items'});
    const pending = items.create({title: 'early'}, {wait: true});
    assert.equal(items.length, 0);
    connect(Backbone, server.url);
    assert.equal(items.length, 0);
    await new Promise((resolve) => items.once('sync', resolve));
    assert.equal(items.first().get('title'), 'early');
    assert.ok(pending);
  });

  test('a sync fails with Timeout when the server cannot be reached', async () => {
    const port = await freePort();
    const Backbone = page(false);
    connect(Backbone, `http://127.0.0.1:${port}`, {syncTimeout: 300});
    const items = new Backbone.Collection([], {backend: 'items'});
    const err = await items.fetch().then(() => null, (e) => e);
    assert.equal(err.name, 'Timeout');
    assert.equal(err.status, 504);
    assert.match(err.message, /Could not reach backend 'items' within 300 ms/);
  });

  test('a backend the server does not have is refused at once', async () => {
    const Backbone = page({syncTimeout: 60000});
    const nothing = new Backbone.Collection([], {backend: 'nothing'});
    const err = await nothing.fetch().then(() => null, (e) => e);
    assert.equal(err.name, 'ConnectionRefused');
    // later syncs fail at once too instead of waiting for the timeout
    const again = await nothing.fetch().then(() => null, (e) => e);
    assert.equal(again.name, 'ConnectionRefused');
  });

  test('connect() returns the root socket and calling it again returns the same one', () => {
    const Backbone = page(false);
    const socket = connect(Backbone, server.url);
    assert.equal(socket.nsp, '/');
    assert.equal(connect(Backbone, server.url), socket);
    assert.equal(Backbone.IO, Backbone.io);
  });
});

describe('notifications', () => {
  test('synced triggers <event> and <event>:<method> with the server prefix', async () => {
    const Backbone = page();
    const watcher = new Backbone.Collection([], {backend: {name: 'custom', channel: 'n1'}});
    const events = [];
    watcher.on('all', (name, ...args) => events.push([name, ...args]));
    await once(Backbone.io, 'listen');
    const Writer = page();
    const model = new (Writer.Model.extend({backend: {name: 'custom', channel: 'n1'}}))();
    const heard = once(watcher, 'custom:create');
    await model.save({text: 'hi'});
    await heard;
    assert.deepEqual(events.map((e) => e[0]), ['custom', 'custom:create']);
    assert.deepEqual(events[0].slice(1), ['create', model.toJSON()]);
    assert.deepEqual(events[1].slice(1), [model.toJSON()]);
  });

  test('bindBackend applies create, update, patch and delete; unknown ids are ignored', async () => {
    const reader = page();
    const spec = {name: 'items', channel: 'bind'};
    const mirror = new reader.Collection([], {backend: spec}).bindBackend();
    await once(reader.io, 'listen');
    const writer = page();
    const items = new writer.Collection([], {backend: spec});

    const heard = (event, action) => {
      const got = once(mirror, event);
      return Promise.resolve(action()).then(() => got);
    };
    let a;
    await heard('backend:create', () => new Promise((resolve) => {
      a = items.create({title: 'a', extra: 1}, {success: resolve});
    }));
    assert.deepEqual(mirror.pluck('title'), ['a']);

    // an update replaces the whole model: attributes it lacks are removed
    a.unset('extra');
    await heard('backend:update', () => a.save({title: 'A'}));
    assert.deepEqual(mirror.get(a.id).attributes, {id: a.id, title: 'A'});

    await heard('backend:patch', () => a.save({done: true}, {patch: true}));
    assert.deepEqual(mirror.get(a.id).attributes, {id: a.id, title: 'A', done: true});

    // a create of an id the collection already holds adds no duplicate
    mirror.add({id: 'dup', title: 'local'});
    // (create() of a model with an id would be an update: ask for a create)
    const dup = new writer.Model({id: 'dup', title: 'server'}, {collection: items});
    await heard('backend:create', () => writer.sync('create', dup, {}));
    assert.equal(mirror.where({id: 'dup'}).length, 1);
    assert.equal(mirror.get('dup').get('title'), 'server');
    mirror.remove('dup');
    const stranger = new (writer.Model.extend({backend: spec}))({title: 'stranger'});
    await heard('backend:create', () => stranger.save());
    mirror.remove(stranger.id);
    await heard('backend:update', () => stranger.save({title: 'changed'}));
    assert.equal(mirror.get(stranger.id), undefined);

    await heard('backend:delete', () => a.destroy());
    assert.equal(mirror.get(a.id), undefined);
    assert.equal(mirror.length, 0);
  });

  test('a model with its own backend, in no collection, syncs and hears changes', async () => {
    const Backbone = page();
    const Note = Backbone.Model.extend({backend: {name: 'items', channel: 'solo'}});
    const note = await new Note({text: 'v1'}).save();
    // the save above waited for the link to listen; this instance shares it
    const mine = new Note({id: note.id}).bindBackend();
    await mine.fetch();
    assert.equal(mine.get('text'), 'v1');

    const other = page();
    const theirs = new (other.Model.extend({backend: {name: 'items', channel: 'solo'}}))({id: note.id});
    const changed = once(mine, 'change:text');
    await theirs.save({text: 'v2'}, {patch: true});
    await changed;
    assert.equal(mine.get('text'), 'v2');
  });
});

describe('without a backend', () => {
  test('Backbone.sync falls through to the original and returns its value', () => {
    const Backbone = page();
    const calls = [];
    Backbone.ajax = (params) => {
      calls.push(params);
      return 'the xhr';
    };
    const plain = new (Backbone.Model.extend({url: '/plain'}))();
    assert.equal(plain.fetch(), 'the xhr');
    assert.equal(calls.length, 1);
    assert.equal(calls[0].url, '/plain');
  });

  test('invalid backend specs are refused with a clear message', () => {
    const Backbone = page(false);
    assert.throws(() => new Backbone.Collection([], {backend: {channel: 'x'}}),
      /backend must be a name or \{name, channel\}/);
    assert.throws(() => new Backbone.Collection([], {backend: {name: 'items', channel: 5}}),
      /channel must be a non-empty string or null/);
  });
});
