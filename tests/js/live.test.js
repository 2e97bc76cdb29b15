'use strict';
// Live queries in the client: collection.subscribe(query) and what it does
// with the answer's window and the `query(id, kind, model, meta)` events,
// against a scripted Socket.IO server whose answers each test writes. The
// real server is in tests/browser/test_live_queries.py.

const assert = require('node:assert/strict');
const {afterEach, describe, test} = require('node:test');
const {connect, loadClient} = require('./helpers/server');
const {scriptedServer} = require('./helpers/scripted');

const FAST = {reconnectionDelay: 20, reconnectionDelayMax: 50};
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

function pos(seq, channel = null) {
  return {channel, epoch: 'e1', seq};
}

function answer(id, models, seq = 10) {
  return {id, models, epoch: 'e1', seq, positions: [pos(seq)]};
}

function meta(index, seq) {
  return {index, ...pos(seq)};
}

// Listens, answers subscribe with `windows` in turn (the last repeats), and
// unsubscribe with its id; writes are scripted by each test.
function live(windows, extra = {}) {
  let round = 0;
  return {
    listen(socket, [channel], ack) { ack(null, {event: 'backend', channel, positions: [pos(10)]}); },
    subscribe(socket, [request], ack) {
      const models = windows[Math.min(round, windows.length - 1)];
      round += 1;
      ack(null, answer(request.id, models));
    },
    unsubscribe(socket, [id], ack) { ack(null, {id}); },
    sync(socket, request, ack) { ack(null, request.model); },
    ...extra,
  };
}

async function serve(handlers) {
  const server = await scriptedServer('items', handlers);
  servers.push(server);
  return server;
}

// Every add, remove, change and sort of a collection, with the ids in order after it.
function record(collection) {
  const heard = [];
  collection.on('all', (name, first) => {
    if (!['add', 'remove', 'change', 'sort'].includes(name)) return;
    heard.push([name === 'sort' ? 'sort' : `${name} ${first.id}`, ids(collection).join(' ')]);
  });
  return heard;
}

function ids(collection) {
  return collection.pluck('id');
}

afterEach(async () => {
  for (const Backbone of pages.splice(0)) Backbone.io.disconnect();
  for (const server of servers.splice(0)) await server.close();
});

describe('collection.subscribe(query)', () => {
  test('sends subscribe({id, query}) and sets the window of the answer', async () => {
    const server = await serve(live([[{id: 'a', n: 1}, {id: 'b', n: 2}]]));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([{id: 'b', n: 2}, {id: 'z', n: 0}], {backend: 'items'});
    const heard = record(items);
    const synced = [];
    items.on('sync', (c, models) => synced.push(models.length));
    const result = await items.subscribe({done: false, $sort: {n: 1}});
    assert.equal(result, items);
    assert.equal(server.calls.subscribe.length, 1);
    const [request] = server.calls.subscribe[0];
    assert.deepEqual(request.query, {done: false, $sort: {n: 1}});
    assert.match(request.id, /^.{1,64}$/);
    assert.deepEqual(ids(items), ['a', 'b']);
    // Backbone's set: b was there and unchanged, so only z's remove and a's add fire.
    assert.deepEqual(heard.map(([name]) => name).sort(), ['add a', 'remove z', 'sort']);
    assert.deepEqual(synced, [2]);
    assert.equal(Backbone.io.links()[0].live, 1);
  });

  test('fetch({data, live: true}) is subscribe(data)', async () => {
    const server = await serve(live([[{id: 'a'}]]));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    const result = await items.fetch({data: {kind: 'x'}, live: true});
    assert.equal(result, items);
    assert.deepEqual(server.calls.subscribe[0][0].query, {kind: 'x'});
    assert.equal(server.calls.sync.length, 0);  // no read
    assert.deepEqual(ids(items), ['a']);
  });

  test('enter, change and leave go to their index; a move fires change, then sort', async () => {
    const server = await serve(live([[{id: 'a', n: 1}, {id: 'b', n: 2}, {id: 'c', n: 3}]]));
    const Backbone = page(server.url);
    // The comparator would put them the other way round: the window's order wins.
    const items = new Backbone.Collection([], {backend: 'items', comparator: (m) => -m.get('n')});
    await items.subscribe({$sort: {n: 1}, $limit: 3});
    const qid = server.calls.subscribe[0][0].id;
    assert.deepEqual(ids(items), ['a', 'b', 'c']);
    const heard = record(items);
    const seenOnChange = [];
    items.on('change', () => seenOnChange.push(ids(items).join(' ')));
    const socket = server.socket();
    // x enters at the top of a $limit 3 window and pushes c out: leave first, then enter.
    socket.emit('query', qid, 'leave', {id: 'c', n: 3}, meta(null, 11));
    socket.emit('query', qid, 'enter', {id: 'x', n: 0}, meta(0, 11));
    // a moves to the end with a new n
    socket.emit('query', qid, 'change', {id: 'a', n: 9}, meta(2, 12));
    socket.emit('query', qid, 'change', {id: 'x', n: 0, title: 'new'}, meta(0, 13));
    await until(() => items.get('x') && items.get('x').get('title') === 'new', 'the last change');
    assert.deepEqual(ids(items), ['x', 'b', 'a']);
    assert.deepEqual(heard, [
      ['remove c', 'a b'], ['add x', 'x a b'], ['change a', 'x b a'], ['sort', 'x b a'],
      ['change x', 'x b a'],
    ]);
    assert.deepEqual(seenOnChange, ['x b a', 'x b a']);  // the move was made before 'change'
    assert.equal(items.get('a').get('n'), 9);
  });

  test('a change replaces the attributes, as the window shows them', async () => {
    const server = await serve(live([[{id: 'a', n: 1, note: 'x'}]]));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.subscribe({});
    const qid = server.calls.subscribe[0][0].id;
    server.socket().emit('query', qid, 'change', {id: 'a', n: 2}, meta(0, 11));
    await until(() => items.get('a').get('n') === 2, 'the change');
    assert.deepEqual(items.get('a').attributes, {id: 'a', n: 2});
  });

  test('events sent before the answer are kept only if they come after its window', async () => {
    const server = await serve(live([], {
      subscribe(socket, [request], ack) {
        // seq 10 is in the window already; 11 came after it.
        socket.emit('query', request.id, 'enter', {id: 'old'}, meta(0, 10));
        socket.emit('query', request.id, 'enter', {id: 'new'}, meta(1, 11));
        ack(null, answer(request.id, [{id: 'a'}], 10));
      },
    }));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.subscribe({});
    await until(() => items.length === 2, 'the later event');
    assert.deepEqual(ids(items), ['a', 'new']);
  });

  test('a refusal rejects with the server\'s error, fires error, and ends the subscription', async () => {
    const refusal = {name: 'BadRequest', message: 'Unknown operator $near', status: 400,
      query_error: 'operator'};
    const server = await serve(live([], {
      subscribe(socket, args, ack) { ack({error: refusal}); },
    }));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    const errors = [];
    items.on('error', (c, err) => errors.push(err.name));
    const announced = [];
    Backbone.io.on('error', (err, info) => announced.push([err.name, info.subscription]));
    await assert.rejects(items.subscribe({x: {$near: 1}}), (err) => {
      assert.deepEqual(err, refusal);
      return true;
    });
    assert.deepEqual(errors, ['BadRequest']);
    assert.deepEqual(announced, [['BadRequest', server.calls.subscribe[0][0].id]]);
    assert.equal(Backbone.io.links()[0].live, 0);
  });

  test('no answer within syncTimeout rejects with Timeout', async () => {
    const server = await serve(live([], {subscribe() {}}));
    const Backbone = page(server.url, {syncTimeout: 200});
    const items = new Backbone.Collection([], {backend: 'items'});
    await assert.rejects(items.subscribe({}), (err) => {
      assert.equal(err.name, 'Timeout');
      assert.equal(err.status, 504);
      return true;
    });
  });

  test('unsubscribe() sends unsubscribe(id) and later events change nothing', async () => {
    const server = await serve(live([[{id: 'a'}]]));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.subscribe({});
    const qid = server.calls.subscribe[0][0].id;
    assert.equal(await items.unsubscribe(), items);
    assert.deepEqual(server.calls.unsubscribe, [[qid]]);
    server.socket().emit('query', qid, 'enter', {id: 'b'}, meta(1, 11));
    await pause(100);
    assert.deepEqual(ids(items), ['a']);
    assert.equal(Backbone.io.links()[0].live, 0);
  });

  test('a plain fetch() of a live collection ends its subscription', async () => {
    const server = await serve(live([[{id: 'a'}]], {
      sync(socket, request, ack) { ack(null, [{id: 'r1'}, {id: 'r2'}]); },
    }));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.subscribe({});
    const qid = server.calls.subscribe[0][0].id;
    await items.fetch();
    assert.deepEqual(server.calls.unsubscribe, [[qid]]);
    assert.deepEqual(ids(items), ['r1', 'r2']);
    assert.equal(Backbone.io.links()[0].live, 0);
  });

  test('a second subscribe replaces the first, with a new id', async () => {
    const server = await serve(live([[{id: 'a'}], [{id: 'b'}]]));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.subscribe({n: 1});
    await items.subscribe({n: 2});
    const [first, second] = server.calls.subscribe.map(([request]) => request.id);
    assert.notEqual(first, second);
    assert.deepEqual(server.calls.unsubscribe, [[first]]);
    assert.deepEqual(ids(items), ['b']);
    server.socket().emit('query', first, 'enter', {id: 'stale'}, meta(0, 11));
    server.socket().emit('query', second, 'enter', {id: 'c'}, meta(1, 11));
    await until(() => items.get('c'), 'the second subscription\'s event');
    assert.deepEqual(ids(items), ['b', 'c']);
  });

  test('after a reconnect it subscribes with the same id and sets the fresh window', async () => {
    const server = await serve(live([
      [{id: 'a', n: 1}, {id: 'b', n: 2}],
      [{id: 'a', n: 1}, {id: 'c', n: 3}],  // written meanwhile: b left, c entered
    ]));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.subscribe({});
    const a = items.get('a');
    const heard = record(items);
    Backbone.io.socketOf(items).io.engine.close();
    await until(() => server.calls.subscribe.length === 2, 'the second subscribe');
    await until(() => items.get('c'), 'the fresh window');
    assert.equal(server.calls.subscribe[1][0].id, server.calls.subscribe[0][0].id);
    assert.deepEqual(ids(items), ['a', 'c']);
    assert.equal(items.get('a'), a);  // the same instance: no flicker
    // Backbone's set: c took b's place, which it counts as a new order too.
    assert.deepEqual(heard.map(([name]) => name).sort(), ['add c', 'remove b', 'sort']);
  });

  test('a subscribe made before connect() goes once the socket listens', async () => {
    const server = await serve(live([[{id: 'a'}]]));
    const Backbone = loadClient();
    pages.push(Backbone);
    const items = new Backbone.Collection([], {backend: 'items'});
    const subscribed = items.subscribe({});
    assert.equal(server.calls.subscribe.length, 0);
    connect(Backbone, server.url, FAST);
    assert.equal(await subscribed, items);
    assert.deepEqual(ids(items), ['a']);
  });

  test('after Backbone.io.disconnect() and connect() it subscribes again', async () => {
    const server = await serve(live([[{id: 'a'}], [{id: 'b'}]]));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.subscribe({});
    Backbone.io.disconnect();
    connect(Backbone, server.url, FAST);
    await until(() => items.get('b'), 'the window of the new connection');
    assert.deepEqual(ids(items), ['b']);
    assert.equal(server.calls.subscribe[1][0].id, server.calls.subscribe[0][0].id);
  });

  test('a channel whose listen is refused rejects its subscriptions with the refusal', async () => {
    const refusal = {name: 'Forbidden', message: 'Not in this room', status: 403};
    const server = await serve(live([[]], {
      listen(socket, [channel], ack) { ack({error: refusal}); },
    }));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: {name: 'items', channel: 'room'}});
    await assert.rejects(items.subscribe({}), (err) => {
      assert.deepEqual(err, refusal);
      return true;
    });
    assert.equal(server.calls.subscribe.length, 0);
    // and a later one fails at once, as syncs do
    await assert.rejects(items.subscribe({}), (err) => err.name === 'Forbidden');
  });

  test('a bound live collection ignores synced notifications: only its window counts', async () => {
    const server = await serve(live([[{id: 'a', done: false}]]));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    items.bindBackend();
    await items.subscribe({done: false});
    const heard = [];
    items.on('backend:create', (model) => heard.push(model.id));
    server.socket().emit('synced', 'create', {id: 'done', done: true}, pos(11));
    await until(() => heard.length === 1, 'the notification');
    assert.deepEqual(ids(items), ['a']);
  });
});

describe('writes through a live collection', () => {
  // Creates get ids; the test decides when the query event goes, before or after the ack.
  function writer({eventFirst, enters = true, index = 0}) {
    return live([[{id: 'a', n: 5}]], {
      sync(socket, request, ack) {
        const model = {...request.model, id: 'new1'};
        const qid = socket.qid;
        const send = () => {
          if (enters) socket.emit('query', qid, 'enter', model, meta(index, 11));
        };
        if (eventFirst) send();
        ack(null, model);
        if (!eventFirst) send();
      },
      subscribe(socket, [request], ack) {
        socket.qid = request.id;
        ack(null, answer(request.id, [{id: 'a', n: 5}]));
      },
    });
  }

  for (const eventFirst of [true, false]) {
    for (const wait of [false, true]) {
      const when = eventFirst ? 'before' : 'after';
      test(`create({wait: ${wait}}) with its enter ${when} the answer: one model, the page's`, async () => {
        const server = await serve(writer({eventFirst}));
        const Backbone = page(server.url);
        const items = new Backbone.Collection([], {backend: 'items'});
        await items.subscribe({$sort: {n: 1}});
        const adds = [];
        items.on('add', (m) => adds.push(m.id || 'new'));
        const made = items.create({n: 1}, {wait});
        await until(() => !made.isNew() && items.get('new1') && !made.pending, 'the answer');
        await pause(50);
        assert.deepEqual(ids(items), ['new1', 'a']);  // the window's index 0
        assert.equal(items.get('new1'), made);
        assert.equal(items.length, 2);
        // Heard after its answer, the enter brings the page's instance back
        // (it left when the answer found it outside the window).
        assert.equal(adds.length, eventFirst ? 1 : 2);
      });
    }
  }

  test('a create the window does not hold leaves the collection once answered', async () => {
    const server = await serve(writer({eventFirst: true, enters: false}));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.subscribe({n: 5});
    const made = items.create({n: 1});
    assert.deepEqual(items.pluck('n'), [5, 1]);  // shown while unanswered
    await until(() => !made.isNew(), 'the answer');
    assert.deepEqual(ids(items), ['a']);
  });

  test('the other windows\' events wait while a create is unanswered, then apply in order', async () => {
    let ackCreate = null;
    const server = await serve(live([[{id: 'a', n: 5}]], {
      subscribe(socket, [request], ack) {
        socket.qid = request.id;
        ack(null, answer(request.id, [{id: 'a', n: 5}]));
      },
      sync(socket, request, ack) {
        const model = {...request.model, id: 'new1'};
        // someone else's write enters first, then this create's own enter
        socket.emit('query', socket.qid, 'enter', {id: 'other', n: 0}, meta(0, 11));
        socket.emit('query', socket.qid, 'enter', model, meta(1, 12));
        ackCreate = () => ack(null, model);
      },
    }));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.subscribe({$sort: {n: 1}});
    const made = items.create({n: 1});
    await until(() => ackCreate, 'the create to arrive');
    await pause(50);
    assert.deepEqual(items.pluck('n'), [5, 1]);  // the enter of 'other' waits behind the create
    ackCreate();
    await until(() => items.get('other'), 'the waiting events');
    assert.deepEqual(ids(items), ['other', 'new1', 'a']);
    assert.equal(items.get('new1'), made);
  });

  test('a window answered while a create is unanswered is set (and resolved) after it', async () => {
    let ackCreate = null;
    const server = await serve(live([], {
      subscribe(socket, [request], ack) {
        // The create was written before the window was read: it is in it.
        ack(null, answer(request.id, [{id: 'a', n: 5}, {id: 'new1', n: 1}]));
      },
      sync(socket, request, ack) { ackCreate = () => ack(null, {...request.model, id: 'new1'}); },
    }));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    const made = items.create({n: 1});
    await until(() => ackCreate, 'the create to arrive');
    let resolved = false;
    const subscribed = items.subscribe({}).then(() => { resolved = true; });
    await until(() => server.calls.subscribe.length === 1, 'the subscribe');
    await pause(50);
    assert.equal(resolved, false);
    assert.equal(items.length, 1);  // the window waits: new1 may be this create
    ackCreate();
    await subscribed;
    assert.deepEqual(ids(items), ['a', 'new1']);
    assert.equal(items.get('new1'), made);
  });

  test('a patch that takes a model out of the window removes it; destroy is heard once', async () => {
    const server = await serve(live([[{id: 'a', done: false}, {id: 'b', done: false}]], {
      subscribe(socket, [request], ack) {
        socket.qid = request.id;
        ack(null, answer(request.id, [{id: 'a', done: false}, {id: 'b', done: false}]));
      },
      sync(socket, request, ack) {
        socket.emit('query', socket.qid, 'leave', {id: request.model.id}, meta(null, 11));
        ack(null, request.method === 'delete' ? {} : request.model);
      },
    }));
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.subscribe({done: false});
    const removes = [];
    items.on('remove', (m) => removes.push(m.id));
    await items.get('a').save({done: true}, {patch: true});
    assert.deepEqual(ids(items), ['b']);
    await new Promise((resolve) => items.get('b').destroy({wait: true, success: resolve}));
    assert.deepEqual(ids(items), []);
    assert.deepEqual(removes, ['a', 'b']);
  });
});

describe('live queries against a real backboneio server', () => {
  let server;
  const {after, before} = require('node:test');
  const {startServer} = require('./helpers/server');
  before(async () => { server = await startServer(); });
  after(async () => { if (server) await server.stop(); });

  // create() returns the model; this waits for the server's answer.
  function created(collection, attrs) {
    return new Promise((resolve, reject) => {
      collection.create(attrs, {wait: true, success: resolve, error: (m, err) => reject(err)});
    });
  }

  // What a one-off read of the same query answers: the window the live copy must equal.
  async function window(Backbone, query) {
    const once = new Backbone.Collection([], {backend: 'items'});
    await once.fetch({data: query});
    return once.pluck('title');
  }

  test('another page\'s writes move the window; it equals a fresh read after each', async () => {
    const tag = `w${Date.now()}`;
    const query = {tag, done: false, $sort: {n: -1}, $limit: 3};
    const reader = page(server.url);
    const writer = page(server.url);
    const items = new writer.Collection([], {backend: 'items'});
    for (const n of [1, 2, 3, 4]) {
      await created(items, {tag, n, done: false, title: `t${n}`});
    }
    const liveItems = new reader.Collection([], {backend: 'items'});
    await liveItems.subscribe(query);
    assert.deepEqual(liveItems.pluck('title'), ['t4', 't3', 't2']);
    const heard = [];
    liveItems.on('add remove', (m, c, options) => heard.push(`${options.add ? '+' : '-'}${m.get('title')}`));

    await created(items, {tag, n: 9, done: false, title: 't9'});  // enters at the top
    await until(() => liveItems.first().get('title') === 't9', 't9 to enter');
    assert.deepEqual(liveItems.pluck('title'), ['t9', 't4', 't3']);
    assert.deepEqual(heard, ['-t2', '+t9']);  // t2 pushed out by the $limit

    await items.findWhere({n: 4}).save({done: true}, {patch: true});  // stops matching
    await until(() => !liveItems.findWhere({title: 't4'}), 't4 to leave');
    assert.deepEqual(liveItems.pluck('title'), ['t9', 't3', 't2']);  // t2 back from below
    assert.deepEqual(liveItems.pluck('title'), await window(writer, query));

    await items.findWhere({n: 1}).save({n: 10}, {patch: true});  // t1 climbs to the top
    await until(() => liveItems.first().get('title') === 't1', 't1 to enter at the top');
    assert.deepEqual(liveItems.pluck('title'), await window(writer, query));

    await liveItems.unsubscribe();
    await created(items, {tag, n: 20, done: false, title: 't20'});
    await pause(100);
    assert.equal(liveItems.findWhere({title: 't20'}), undefined);
  });

  test('a create through the live collection ends as one model, the page\'s own', async () => {
    const tag = `c${Date.now()}`;
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await items.subscribe({tag, $sort: {n: 1}});
    const made = items.create({tag, n: 1, title: 'mine'});
    const made2 = items.create({tag, n: 0, title: 'mine too'}, {wait: true});
    await until(() => !made.isNew() && !made.pending && items.length === 2 &&
      items.every((m) => !m.pending && !m.isNew()), 'both answers');
    await pause(50);
    assert.deepEqual(items.pluck('title'), ['mine too', 'mine']);
    assert.equal(items.get(made.id), made);
    assert.equal(items.get(made2.id), made2);
  });

  test('a refused query rejects with BadRequest and its query_error', async () => {
    const Backbone = page(server.url);
    const items = new Backbone.Collection([], {backend: 'items'});
    await assert.rejects(items.subscribe({n: {$nope: 1}}), (err) => {
      assert.equal(err.name, 'BadRequest');
      assert.equal(err.status, 400);
      assert.ok(err.query_error, JSON.stringify(err));
      return true;
    });
  });
});
