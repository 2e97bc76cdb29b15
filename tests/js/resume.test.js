'use strict';
// Positions and resume: what backbone.io.js keeps of each stream, what it
// sends when it listens again, what it drops, and what it does when the
// server cannot replay. The wire cases come from a scripted Socket.IO server;
// the last suite runs the same against a real backboneio server.

const assert = require('node:assert/strict');
const {after, afterEach, before, describe, test} = require('node:test');
const {connect, loadClient, once, startServer} = require('./helpers/server');
const {scriptedServer} = require('./helpers/scripted');

const FAST = {reconnectionDelay: 20, reconnectionDelayMax: 50};
const pages = [];
let scripted = [];

function page(url, options) {
  const Backbone = loadClient();
  pages.push(Backbone);
  connect(Backbone, url, {...FAST, ...options});
  return Backbone;
}

function pos(channel, epoch, seq) {
  return {channel, epoch, seq};
}

async function until(check, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// What the page records of a collection: every notification and resync.
function record(collection, prefix = 'backend') {
  const heard = [];
  collection.on('all', (name, ...args) => {
    if (name.startsWith(prefix + ':')) heard.push([name, name.endsWith(':resync') ? args[1] : args[0]]);
  });
  return heard;
}

function byChannel(positions) {
  return [...positions].sort((a, b) => (a.channel || '').localeCompare(b.channel || ''));
}

// Drops the connection the way a network does: socket.io reconnects by itself.
function dropConnection(Backbone, obj) {
  Backbone.io.socketOf(obj).io.engine.close();
}

async function script(handlers) {
  const server = await scriptedServer('items', handlers);
  scripted.push(server);
  return server;
}

afterEach(async () => {
  for (const Backbone of pages.splice(0)) Backbone.io.disconnect();
  for (const server of scripted.splice(0)) await server.close();
});

describe('positions and resume (scripted server)', () => {
  test('the last positions of both streams go back as since; repeats are dropped', async () => {
    let listens = 0;
    const server = await script({
      listen(socket, [channel], ack) {
        listens += 1;
        if (listens === 1) {
          ack({event: 'backend', channel, recovered: true,
            positions: [pos(null, 'e1', 3), pos('room', 'e1', 7)]});
          return;
        }
        // The replay, before the answer: one entry the page already has, two it missed.
        socket.emit('synced', 'patch', {id: 1, title: 'seen'}, pos('room', 'e1', 9));
        socket.emit('synced', 'create', {id: 3, title: 'missed'}, pos('room', 'e1', 10));
        socket.emit('synced', 'create', {id: 4, title: 'missed too'}, pos(null, 'e1', 6));
        ack({event: 'backend', channel, recovered: true,
          positions: [pos(null, 'e1', 6), pos('room', 'e1', 10)]});
        socket.emit('synced', 'delete', {id: 3}, pos('room', 'e1', 10));  // a repeat
        // seq 7 was hidden from this client by a per-recipient rule: not a loss
        socket.emit('synced', 'update', {id: 4, title: 'live'}, pos(null, 'e1', 8));
      },
      sync(socket, request, ack) {
        ack(null, [{id: 1, title: 'first'}], {positions: [pos(null, 'e1', 3), pos('room', 'e1', 9)]});
      },
    });
    const Backbone = page(server.url);
    const mirror = new Backbone.Collection([], {backend: {name: 'items', channel: 'room'}});
    mirror.bindBackend();
    const heard = record(mirror);
    await mirror.fetch();
    server.socket().emit('synced', 'create', {id: 2, title: 'live'}, pos(null, 'e1', 5));
    await until(() => mirror.get(2), 'the live create');
    assert.deepEqual(server.calls.listen, [['room']]);

    const resumed = new Promise((resolve) => Backbone.io.on('listen', (...args) => resolve(args)));
    dropConnection(Backbone, mirror);
    const [, , answer, info] = await resumed;
    assert.equal(answer.recovered, true);
    assert.deepEqual(info, {resumed: true, recovered: true, replayed: 2, failed: []});
    const [channel, options] = server.calls.listen[1];
    assert.equal(channel, 'room');
    // null-channel stream from the synced event; the room's from the read's answer
    assert.deepEqual(byChannel(options.since), [pos(null, 'e1', 5), pos('room', 'e1', 9)]);

    await until(() => mirror.get(4) && mirror.get(4).get('title') === 'live', 'the live update');
    assert.deepEqual(mirror.toJSON(), [
      {id: 1, title: 'first'}, {id: 2, title: 'live'}, {id: 3, title: 'missed'},
      {id: 4, title: 'live'},
    ]);
    assert.deepEqual(heard.map(([name, model]) => [name, model.id]), [
      ['backend:create', 2], ['backend:create', 3], ['backend:create', 4], ['backend:update', 4],
    ]);
    assert.equal(server.calls.sync.length, 1);  // nothing was refetched
    assert.deepEqual(byChannel(Backbone.io.links().find((l) => l.channel === 'room').positions),
      [pos(null, 'e1', 8), pos('room', 'e1', 10)]);
  });

  test('recovered false: <event>:resync, and bound collections fetch again with their query',
    async () => {
      let listens = 0;
      let store = [{id: 'a', tag: 'x'}, {id: 'b', tag: 'x'}];
      const server = await script({
        listen(socket, [channel], ack) {
          listens += 1;
          const epoch = listens === 1 ? 'old' : 'new';
          // error-first, as `sync` answers: (null, answer)
          ack(null, {event: 'news', channel, recovered: listens === 1,
            failed: listens === 1 ? [] : [pos(null, 'old', 2)], positions: [pos(null, epoch, 2)]});
        },
        sync(socket, request, ack) {
          ack(null, store.filter((m) => m.tag === request.options.data.tag),
            {positions: [pos(null, listens === 1 ? 'old' : 'new', 2)]});
        },
      });
      const Backbone = page(server.url);
      const refetching = new Backbone.Collection([], {backend: 'items'}).bindBackend();
      const keeping = new Backbone.Collection([], {backend: 'items'}).bindBackend({refetch: false});
      const heardRefetching = record(refetching, 'news');
      const resyncs = [];
      keeping.on('news:resync', (collection, info) => resyncs.push([collection, info]));
      Backbone.io.on('resync', (...args) => resyncs.push(args));
      await refetching.fetch({data: {tag: 'x'}});
      await keeping.fetch({data: {tag: 'x'}});
      assert.deepEqual(refetching.pluck('id'), ['a', 'b']);

      store = [{id: 'b', tag: 'x'}, {id: 'c', tag: 'x'}, {id: 'd', tag: 'y'}];
      const refetched = once(refetching, 'sync');
      dropConnection(Backbone, refetching);
      await refetched;
      assert.deepEqual(refetching.pluck('id'), ['b', 'c']);
      assert.deepEqual(keeping.pluck('id'), ['a', 'b']);
      assert.equal(server.calls.sync.length, 3);
      assert.deepEqual(server.calls.sync[2].options, {data: {tag: 'x'}});
      assert.deepEqual(server.calls.listen[1][1], {since: [pos(null, 'old', 2)]});

      const info = {backend: 'items', channel: null, failed: [pos(null, 'old', 2)], reason: 'history'};
      assert.deepEqual(heardRefetching, [['news:resync', info]]);  // the server's prefix
      assert.equal(resyncs.length, 2);
      assert.deepEqual(resyncs[0], ['items', null, info]);
      assert.equal(resyncs[1][0], keeping);
      assert.deepEqual(resyncs[1][1], info);
    });

  test('connect({refetch: false}) keeps the event and leaves the fetching to the page',
    async () => {
      let listens = 0;
      const server = await script({
        listen(socket, [channel], ack) {
          listens += 1;
          ack({event: 'backend', channel, recovered: listens === 1,
            positions: [pos(null, String(listens), 0)]});
        },
        sync(socket, request, ack) { ack(null, []); },
      });
      const Backbone = page(server.url, {refetch: false});
      const mirror = new Backbone.Collection([], {backend: 'items'}).bindBackend();
      await mirror.fetch();
      const resync = once(mirror, 'backend:resync');
      dropConnection(Backbone, mirror);
      await resync;
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(server.calls.sync.length, 1);
      assert.throws(() => loadClient().io.connect(server.url, {refetch: 'no'}),
        /refetch must be true or false/);
    });

  test('a new epoch heard while connected means lost history: resync', async () => {
    const server = await script({
      listen(socket, [channel], ack) {
        ack({event: 'backend', channel, recovered: true, positions: [pos(null, 'e1', 4)]});
      },
      sync(socket, request, ack) { ack(null, [{id: 1}]); },
    });
    const Backbone = page(server.url);
    const mirror = new Backbone.Collection([], {backend: 'items'}).bindBackend();
    await mirror.fetch();
    const resync = once(mirror, 'backend:resync');
    server.socket().emit('synced', 'create', {id: 2}, pos(null, 'e2', 1));
    const [, info] = await resync;
    assert.deepEqual(info.failed, [pos(null, 'e1', 4)]);
    assert.equal(info.reason, 'epoch');
    assert.ok(mirror.get(2));  // the entry itself is applied
    await until(() => server.calls.sync.length === 2, 'the refetch');
  });

  test('a 0.4 server: no positions, no since, notifications as before', async () => {
    const server = await script({
      listen(socket, [channel], ack) { ack({event: 'backend', channel}); },
      sync(socket, request, ack) { ack(null, [{id: 1}]); },
    });
    const Backbone = page(server.url);
    const mirror = new Backbone.Collection([], {backend: {name: 'items', channel: 'old'}});
    mirror.bindBackend();
    const heard = record(mirror);
    await mirror.fetch();
    const relistened = once(Backbone.io, 'listen');
    dropConnection(Backbone, mirror);
    const [, , , info] = await relistened;
    assert.deepEqual(info, {resumed: false, recovered: true, replayed: 0, failed: []});
    // exactly (channel, ack): a 0.4 server reads a second argument as its ack
    assert.deepEqual(server.calls.listen, [['old'], ['old']]);
    server.socket().emit('synced', 'create', {id: 2});
    server.socket().emit('synced', 'create', {id: 2, again: true});
    await until(() => heard.length === 2, 'both notifications');
    assert.deepEqual(mirror.get(2).attributes, {id: 2, again: true});
    assert.equal(server.calls.sync.length, 1);
  });
});

describe('resume against a real server', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server.stop();
  });

  test('a page away while others write gets each missed change once, then live ones',
    async () => {
      const backend = {name: 'items', channel: 'resume-real'};
      const reader = page(server.url);
      const mirror = new reader.Collection([], {backend}).bindBackend();
      const heard = record(mirror);
      await mirror.fetch();
      const writer = page(server.url);
      const items = new writer.Collection([], {backend});
      const first = await items.create({n: 0}, {wait: true});
      await until(() => mirror.length === 1, 'the first create');

      reader.io.disconnect();  // away: its links keep their positions
      const writes = [];
      for (let i = 1; i <= 20; i += 1) {
        const model = await new Promise((resolve) => items.create({n: i}, {wait: true, success: resolve}));
        writes.push(['backend:create', model.id]);
        if (i % 5 === 0) {
          await model.save({n: -i}, {patch: true});
          writes.push(['backend:patch', model.id]);
        }
      }
      await first.destroy({wait: true});
      writes.push(['backend:delete', first.id]);

      const resumed = once(reader.io, 'listen');
      connect(reader, server.url, FAST);
      const [, , answer, info] = await resumed;
      assert.equal(answer.recovered, true);
      assert.equal(info.replayed, writes.length);
      const live = await new Promise((resolve) => items.create({n: 99}, {wait: true, success: resolve}));
      writes.push(['backend:create', live.id]);
      await until(() => heard.length === writes.length + 1, 'every change');
      assert.deepEqual(heard.slice(1).map(([name, model]) => [name, model.id]), writes);

      const store = await new writer.Collection([], {backend}).fetch();
      const sorted = (list) => list.map((m) => JSON.stringify(m)).sort();
      assert.deepEqual(sorted(mirror.toJSON()), sorted(store));
    });
});

after(() => {
  for (const Backbone of pages.splice(0)) Backbone.io.disconnect();
});
