// Types of backboneio-client (backbone.io.js); docs/client.md is the reference.
// build.mjs copies this file to dist/types.d.mts, which index.d.mts (import)
// re-exports, and dist/types.d.cts, which index.d.ts (require) re-exports.
//
// Backbone's own types come from @types/backbone (an optional peer): this file
// adds to them what backbone.io.js adds to Backbone at run time.

import type * as Backbone from 'backbone';
import type {ManagerOptions, Socket, SocketOptions} from 'socket.io-client';

/** A backend name: a non-empty string without `/`. */
export type BackendName = string;

/** Where an object syncs: a backend's name, or a backend and one of its channels. */
export type BackendSpec = BackendName | {name: BackendName; channel?: string | null};

/** The `backend` property: a spec, or a function returning one (read once, after `initialize`). */
export type BackendOption = BackendSpec | (() => BackendSpec);

/** The methods a notification carries. */
export type NotificationMethod = 'create' | 'update' | 'patch' | 'delete';

/** A model as the server sends it (JSON). */
export type ServerModel = Record<string, any>;

/** Options of `Backbone.io.connect`: socket.io-client's, plus the client's own. */
export interface ConnectOptions extends Partial<ManagerOptions & SocketOptions> {
  /** Milliseconds a sync may wait (to be sent, then for its answer); a positive number. Default 30000. */
  syncTimeout?: number;
  /** Whether bound objects fetch again when the server cannot replay what they missed. Default true. */
  refetch?: boolean;
  /** Whether writes are sent again (same idempotency key) after a drop or an unanswered attempt. Default true. */
  retryWrites?: boolean;
  /** Milliseconds after which an unanswered write fails with `Timeout`. Default 3600000 (an hour). */
  giveUpAfter?: number;
  /** On `Conflict`: keep the page's copy (default) or take the server's `current`. */
  onConflict?: ConflictChoice;
  /** The attribute a versioned backend keeps its version in. Default `_version`. */
  versionAttribute?: string;
  /** Keep unanswered writes in localStorage across a reload: true (key `backboneio.queue`) or a key. Default false. */
  persistQueue?: boolean | string;
  /** Returns a fresh token (or a promise of one), asked for before the current token's exp. */
  refreshToken?: () => string | Record<string, unknown> | PromiseLike<string | Record<string, unknown>>;
  /** How long before exp `refreshToken` is asked (at most half the token's remaining life). Default 60000. */
  refreshBefore?: number;
}

/** What a `Conflict` answer does to the model: keep the page's copy, or take the server's. */
export type ConflictChoice = 'keep' | 'server';

/** Options the client reads on a write (`save`, `destroy`, `create`), besides Backbone's. */
export interface WriteOptions {
  /** Sent as the write's idempotency key instead of a fresh one (1 to 128 characters). */
  idempotencyKey?: string;
  /** false: this write is not retried (it fails on a drop, as a read does). */
  retry?: boolean;
  /** This write's choice on `Conflict` (see `ConnectOptions.onConflict`). */
  onConflict?: ConflictChoice;
}

/** One entry of `Backbone.io.pendingWrites()`. */
export interface PendingWrite extends LinkRef {
  method: NotificationMethod;
  /** The model's id, when it has one. */
  id?: unknown;
  idempotencyKey: string;
  /** Attempts so far (0: never sent). */
  attempts: number;
  /** Whether an attempt is waiting for its answer now. */
  sent: boolean;
}

/** What `refresh()` resolves with and the `refresh` event carries. */
export interface RefreshInfo {
  /** When the new credentials expire (seconds since the epoch), when known. */
  expiresAt: number | null;
}

/** The fifth argument of the `retry` event. */
export interface RetryInfo {
  method: NotificationMethod;
  attempts: number;
  idempotencyKey: string;
  reason: BackboneIOError;
}

/** Options of `collection.subscribe()`. */
export interface SubscribeOptions<C = unknown> {
  /** Milliseconds to wait for the window (default: the connection's `syncTimeout`). */
  timeout?: number;
  success?: (collection: C, models: ServerModel[], options: object) => void;
  error?: (collection: C, error: BackboneIOError, options: object) => void;
}

/** Options of `bindBackend()`. */
export interface BindOptions {
  /** false: do not fetch again on `<event>:resync` (handle the event yourself). */
  refetch?: boolean;
}

/** A position in a backend's change stream (servers with a change log). */
export interface Position {
  channel: string | null;
  epoch: string;
  seq: number;
}

/** The error names the server and the client use (a server may add its own). */
export type ErrorName =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'Conflict'
  | 'PayloadTooLarge'
  | 'Unavailable'
  | 'Timeout'
  | 'ConnectionRefused'
  | 'ServerError';

/**
 * What a failed sync passes to its error callback, the `error` event and the
 * promise's rejection: the server's error object, or one the client made
 * (`Timeout`, `Unavailable`, `ConnectionRefused`) of the same shape.
 */
export interface BackboneIOError {
  name: ErrorName | (string & {});
  message: string;
  /** 400, 401, 403, 404, 409, 413, 503, 504, 500... */
  status: number;
  /** The attribute a validation error is about. */
  field?: string;
  /** The id a `Conflict` or `NotFound` is about. */
  id?: unknown;
  /** A versioned store's `Conflict`: the model as it is stored now. */
  current?: ServerModel;
  /** `ConnectionRefused`: what the server sent with the refusal. */
  data?: unknown;
  /** The client's `Timeout`: the sync's method. */
  method?: string;
  /** With the server's DEBUG on. */
  stack?: string;
}

/** A backend and channel, as events and `Backbone.io.links()` name them. */
export interface LinkRef {
  backend: string;
  channel: string | null;
}

/** The server's answer to `listen`. */
export interface ListenAnswer {
  event?: string;
  channel?: string | null;
  positions?: Position[];
  recovered?: boolean;
  failed?: Position[];
}

/** The fourth argument of the `listen` event. */
export interface ListenInfo {
  /** The listen asked to resume from the positions held. */
  resumed: boolean;
  /** false when the server could not replay everything missed. */
  recovered: boolean;
  /** How many notifications the resume replayed. */
  replayed: number;
  failed: Position[];
}

/** What `<event>:resync` and `Backbone.io`'s `resync` carry. */
export interface ResyncInfo extends LinkRef {
  failed: Position[];
  reason: 'history' | 'epoch';
}

/** One entry of `Backbone.io.links()`. */
export interface LinkInfo extends LinkRef {
  subscribers: number;
  /** Live collections on this link (`collection.subscribe()`). */
  live: number;
  pending: number;
  ready: boolean;
  positions: Position[];
}

/** A presence member: who (`id`, the server's key: identity, else page) and what it said. */
export interface PresenceMember<S extends object = Record<string, unknown>> {
  id: string;
  state: S;
  /** Its open connections (tabs of one user are one member). */
  connections: number;
}

/** What a `presence` request answers (and `announce()` resolves with). */
export interface PresenceAnswer<S extends object = Record<string, unknown>> {
  channel: string | null;
  /** This page's member id, or null when it has not announced itself. */
  self: string | null;
  members: Array<PresenceMember<S>>;
}

/** `Backbone.io.presence(backend, channel)`: the members of a backend or channel, kept current. */
export interface PresenceMembers<S extends object = Record<string, unknown>>
  extends Backbone.Collection<Backbone.Model<PresenceMember<S>>> {
  /** This page's member id once announced, else null. */
  me: string | null;
  /** Announces this page with `state` (a small object), or updates it; `null` leaves. Re-sent after every reconnect. */
  announce(state: S | null): Promise<PresenceAnswer<S> | null>;
  /** `announce(null)`. */
  leave(): Promise<PresenceAnswer<S> | null>;
  /** Stops keeping the members current (and leaves). */
  stop(): void;
}

/** `<event>` on a model or collection: `(method, model)`. */
export type NotificationHandler = (method: NotificationMethod, model: ServerModel) => void;
/** `<event>:<method>` on a model or collection: `(model)`. */
export type MethodNotificationHandler = (model: ServerModel) => void;
/** `<event>:resync` on a model or collection: `(object, info)`. */
export type ResyncHandler<O = Backbone.Model | Backbone.Collection> = (object: O, info: ResyncInfo) => void;

/** The events `Backbone.io` triggers, with their arguments. */
export interface BackboneIOEvents {
  listen: (backend: string, channel: string | null, answer: ListenAnswer, info: ListenInfo) => void;
  disconnect: (backend: string, channel: string | null, reason: Socket.DisconnectReason) => void;
  /** `where.subscription`: the id of the live query the error ended, if it was one. */
  error: (error: BackboneIOError, where: LinkRef & { subscription?: string }) => void;
  resync: (backend: string, channel: string | null, info: ResyncInfo) => void;
  refresh: (info: RefreshInfo) => void;
  retry: (where: LinkRef, info: RetryInfo) => void;
}

type Synced = Backbone.Model | Backbone.Collection;

/** `Backbone.io` (also `Backbone.IO`): a `Backbone.Events` object. */
export interface BackboneIO extends Backbone.EventsMixin {
  readonly VERSION: string;
  /** The `Backbone.sync` that was replaced. */
  readonly originalSync: typeof Backbone.sync;

  /** Opens the connection; returns the socket of the root namespace `/`. Calling it again returns that socket. */
  connect(url: string | undefined, options?: ConnectOptions): Socket;
  connect(options?: ConnectOptions): Socket;
  /** Closes every socket; syncs still waiting fail with `Unavailable`. */
  disconnect(): void;
  /** Stops delivering notifications to `obj` (until `bindBackend()`). */
  unsubscribe(obj: Synced): void;
  /** The socket `obj` syncs on, or null without a backend. */
  socketOf(obj: Synced): Socket | null;
  /** The open links, for debugging. */
  links(): LinkInfo[];
  /** Hands every open socket new credentials (a string is sent as `{token}`), without reconnecting. */
  refresh(credentials: string | Record<string, unknown>): PromiseLike<RefreshInfo>;
  /** The writes not yet answered, in the order they were made. */
  pendingWrites(): PendingWrite[];
  /** A fresh idempotency key (a random UUID). */
  idempotencyKey(): string;
  /** The members of `backend` (or of its `channel`), kept current; one collection per backend and channel. */
  presence<S extends object = Record<string, unknown>>(
    backend: string,
    channel?: string | null,
    options?: { state?: S | null },
  ): PresenceMembers<S>;

  on<K extends keyof BackboneIOEvents>(eventName: K, callback: BackboneIOEvents[K], context?: any): this;
  on(eventName: string, callback: Backbone.EventHandler, context?: any): this;
  on(eventMap: Backbone.EventMap, context?: any): this;
  once<K extends keyof BackboneIOEvents>(eventName: K, callback: BackboneIOEvents[K], context?: any): this;
  once(events: string, callback: Backbone.EventHandler, context?: any): this;
  once(eventMap: Backbone.EventMap, context?: any): this;
}

// What backbone.io.js adds to Backbone's models and collections.
interface Backed {
  /** The backend this object syncs with (see BackendSpec). */
  backend?: BackendOption;
  /** Apply other clients' changes to this object; returns it. */
  bindBackend(options?: BindOptions): this;
  /** Stop applying them (the events keep coming); returns it. */
  unbindBackend(): this;
}

declare module 'backbone' {
  /** backbone.io.js: the client (the same object as `Backbone.IO`). */
  const io: BackboneIO;
  const IO: BackboneIO;

  interface Model<T extends ObjectHash = any, S = ModelSetOptions, E = any> extends Backed {
    /** true while a write of this model is unanswered (queued, retried, or on its way). */
    readonly pending: boolean;
    on(eventName: 'pending', callback: (model: this, pending: boolean, options: any) => void, context?: any): this;
    // The default event prefix, `backend`, typed; other prefixes take the
    // string signatures (see NotificationHandler and friends).
    on(eventName: 'backend', callback: NotificationHandler, context?: any): this;
    on(eventName: `backend:${NotificationMethod}`, callback: MethodNotificationHandler, context?: any): this;
    on(eventName: 'backend:resync', callback: ResyncHandler<this>, context?: any): this;
    on(eventName: string, callback: Backbone.EventHandler, context?: any): this;
    on(eventMap: Backbone.EventMap, context?: any): this;
    once(eventName: 'backend', callback: NotificationHandler, context?: any): this;
    once(eventName: `backend:${NotificationMethod}`, callback: MethodNotificationHandler, context?: any): this;
    once(eventName: 'backend:resync', callback: ResyncHandler<this>, context?: any): this;
    once(events: string, callback: Backbone.EventHandler, context?: any): this;
    once(eventMap: Backbone.EventMap, context?: any): this;
  }
  interface Collection<TModel extends Model = Model> extends Backed {
    /**
     * Make this collection the live window of `query` (docs/live-queries.md):
     * models enter, change and leave it as anyone writes. Resolves once the
     * window is in the collection; rejects with the server's refusal.
     */
    subscribe(query?: object, options?: SubscribeOptions<this>): PromiseLike<this>;
    /** End the live query; resolves once the server has been told. */
    unsubscribe(): PromiseLike<this>;
    // The default event prefix, `backend`, typed; other prefixes take the
    // string signatures (see NotificationHandler and friends).
    on(eventName: 'backend', callback: NotificationHandler, context?: any): this;
    on(eventName: `backend:${NotificationMethod}`, callback: MethodNotificationHandler, context?: any): this;
    on(eventName: 'backend:resync', callback: ResyncHandler<this>, context?: any): this;
    on(eventName: string, callback: Backbone.EventHandler, context?: any): this;
    on(eventMap: Backbone.EventMap, context?: any): this;
    once(eventName: 'backend', callback: NotificationHandler, context?: any): this;
    once(eventName: `backend:${NotificationMethod}`, callback: MethodNotificationHandler, context?: any): this;
    once(eventName: 'backend:resync', callback: ResyncHandler<this>, context?: any): this;
    once(events: string, callback: Backbone.EventHandler, context?: any): this;
    once(eventMap: Backbone.EventMap, context?: any): this;
  }
  interface CollectionFetchOptions {
    /** With `data`: `subscribe(data)` instead of one read (a live query). */
    live?: boolean;
  }
  interface ModelSaveOptions extends WriteOptions {}
  interface ModelDestroyOptions extends WriteOptions {}
  interface ModelConstructorOptions<TModel extends Model = Model> {
    /** Sync this model with a backend of its own. */
    backend?: BackendOption;
  }
}
