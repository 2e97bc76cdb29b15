// A TypeScript app using backboneio-client; tests/browser/test_bundle.py
// type-checks it with `tsc --noEmit --strict` (and wrong.ts must fail).
import Backbone from 'backbone';
import backboneIO, {
  type BackboneIOError,
  type PendingWrite,
  type RefreshInfo,
  type BackendSpec,
  type ConnectOptions,
  type LinkInfo,
  type MethodNotificationHandler,
} from 'backboneio-client';
import type {Socket} from 'socket.io-client';

const options: ConnectOptions = {syncTimeout: 5000, refetch: true, auth: {token: 'secret'}};
const socket: Socket = backboneIO.connect(options);
backboneIO.connect('http://127.0.0.1:3000', {reconnectionDelay: 100, transports: ['websocket']});
console.log(socket.connected, backboneIO === Backbone.io, Backbone.IO.VERSION);

backboneIO.on('listen', (backend, channel, answer, info) => {
  const name: string = backend;
  const room: string | null = channel;
  const prefix: string | undefined = answer.event;
  const replayed: number = info.replayed;
  console.log(name, room, prefix, replayed, info.recovered);
});
backboneIO.on('disconnect', (backend, channel, reason) => {
  if (reason === 'io server disconnect') console.log(backend, channel);
});
backboneIO.on('error', (err, where) => console.log(err.name, err.status, where.backend));
backboneIO.once('resync', (backend, channel, info) => console.log(info.reason, info.failed.length));
backboneIO.on('custom:event', (...args: unknown[]) => console.log(args));

// Classes made with extend(), the Backbone way.
const Messages = Backbone.Collection.extend({backend: 'messages'});
const messages: Backbone.Collection = new Messages();
messages.bindBackend().fetch({data: {author: 'ann'}});
messages.bindBackend({refetch: false}).unbindBackend();

// Or TypeScript classes: `backend` on the prototype (a class field would be
// set only after Backbone's constructor has run).
class Todo extends Backbone.Model {}
class Todos extends Backbone.Collection<Todo> {}
Todos.prototype.model = Todo;
Todos.prototype.backend = {name: 'todos', channel: 'room-1'};
const todos = new Todos();
todos.bindBackend();

const spec: BackendSpec = {name: 'todos', channel: null};
const elsewhere = new Backbone.Collection([], {backend: spec});
const profile = new Backbone.Model({id: 'me'}, {backend: (): BackendSpec => 'profiles'});
profile.bindBackend();

todos.on('backend', (method, model) => console.log(method.toUpperCase(), model.id));
todos.on('backend:create', (model) => console.log(model.title));
todos.on('backend:resync', (collection, info) => {
  const same: Todos = collection;
  console.log(same.length, info.backend, info.channel);
});
const onUpdate: MethodNotificationHandler = (model) => console.log(model);
elsewhere.on('news:update', onUpdate);
elsewhere.on('change', () => console.log('Backbone events still type-check'));

new Todo({title: 'x'}).save(null, {
  error: (model: Todo, err: BackboneIOError) => {
    if (err.name === 'Conflict' && err.current) console.log(err.current, err.status);
    if (err.name === 'Timeout') console.log(err.method, err.message);
  },
});

// Safe writes: keys, the queue, pending marks, conflicts, token refresh.
backboneIO.connect({
  retryWrites: true, giveUpAfter: 600000, onConflict: 'server', versionAttribute: '_version',
  persistQueue: 'my-app.queue', refreshBefore: 30000,
  refreshToken: () => fetch('/token').then((response) => response.text()),
});
const draft = new Todo({title: 'offline'});
draft.on('pending', (model, pending) => console.log(model.id, pending, draft.pending));
draft.save(null, {idempotencyKey: backboneIO.idempotencyKey(), onConflict: 'keep', retry: false});
draft.destroy({idempotencyKey: 'delete-1'});
const waiting: PendingWrite[] = backboneIO.pendingWrites();
console.log(waiting.map((write) => [write.method, write.idempotencyKey, write.attempts, write.sent]));
backboneIO.refresh('new.jwt.token').then((info: RefreshInfo) => console.log(info.expiresAt));
backboneIO.refresh({token: 'new.jwt.token'});
backboneIO.on('refresh', (info) => console.log(info.expiresAt));
backboneIO.on('retry', (where, info) => console.log(where.backend, info.attempts, info.reason.name));

const online = backboneIO.presence<{name: string; typing?: boolean}>('messages', 'lobby');
online.announce({name: 'ann', typing: true}).then((answer) => console.log(answer?.self, answer?.members.length));
online.on('add remove change', () => console.log(online.map((m) => [m.id, m.get('state')?.name, m.get('connections')])));
console.log(online.me, backboneIO.presence('messages').length);
online.leave();
online.stop();

const links: LinkInfo[] = backboneIO.links();
console.log(links.map((link) => [link.backend, link.pending, link.positions[0]?.seq]));
console.log(backboneIO.socketOf(todos)?.id, backboneIO.originalSync === Backbone.sync);
backboneIO.unsubscribe(profile);
backboneIO.disconnect();

// Live queries: the collection is the query's window, kept by the server.
const active = new Todos();
active.subscribe({done: false, $sort: {createdAt: 1}}, {timeout: 5000}).then((same) => {
  const kept: Todos = same;
  console.log(kept.length);
  return kept.unsubscribe();
});
active.fetch({data: {done: false}, live: true});
backboneIO.on('error', (err, where) => console.log(err.name, where.subscription));
const liveCount: number = backboneIO.links()[0].live;
console.log(liveCount);
