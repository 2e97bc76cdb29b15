/*!
 * backbone.io.js -- realtime Backbone.js sync over Socket.IO, for backboneio servers.
 *
 * Load it after Backbone 1.6, Underscore 1.13 and socket.io-client 4.x (jQuery is
 * optional), or require() it from a bundler. The API is Backbone.IO 0.4's:
 *
 *   Backbone.io.connect();
 *   var Messages = Backbone.Collection.extend({backend: 'messages'});
 *   var messages = new Messages();
 *   messages.bindBackend();
 *   messages.fetch();
 *
 * docs/client.md is the reference. MIT licence.
 */
(function (root, factory) {
  if (typeof define === 'function' && define.amd) {
    // A page with RequireJS may still load this file with a script tag after
    // the globals, as Backbone's own build allows: patch them right away too.
    // The factory is idempotent, so AMD's copy being the global is harmless.
    if (root.Backbone && root._ && root.io) factory(root.Backbone, root._, root.io);
    define(['backbone', 'underscore', 'socket.io-client'], factory);
  } else if (typeof module === 'object' && module.exports) {
    module.exports = factory(require('backbone'), require('underscore'), require('socket.io-client'));
  } else {
    var missing = ['Backbone', '_', 'io'].filter(function (name) { return !root[name]; });
    if (missing.length) {
      throw new Error('backbone.io.js must be loaded after Backbone, Underscore and ' +
        'socket.io-client; missing global(s): ' + missing.join(', '));
    }
    factory(root.Backbone, root._, root.io);
  }
})(typeof globalThis !== 'undefined' ? globalThis : this, function (Backbone, _, io) {
  'use strict';

  if (Backbone.io && Backbone.io.originalSync) return Backbone.io;
  // Bundlers hand over socket.io-client's module object rather than io().
  if (typeof io !== 'function') io = io && (io.io || io['default']);
  if (typeof io !== 'function') {
    throw new TypeError('backbone.io.js: socket.io-client did not provide an io() function');
  }

  var DEFAULT_SYNC_TIMEOUT = 30000;
  // How long a write is retried before it fails with Timeout: well inside the
  // lifetime of the server's idempotency keys (24 hours by default), past which
  // a retry could be applied a second time.
  var DEFAULT_GIVE_UP = 3600000;
  // Milliseconds before sending a write again after an attempt went unanswered
  // or was refused as Unavailable; the last one repeats.
  var RETRY_DELAYS = [250, 1000, 2000, 5000, 10000];
  // A token refresh is attempted this long before the token's exp (at most half its life).
  var DEFAULT_REFRESH_BEFORE = 60000;
  var WRITES = {create: true, update: true, patch: true, delete: true};
  // Events Backbone triggers itself: a listener for one of them is not waiting
  // for notifications (used until the server has told the event prefix).
  var BACKBONE_EVENTS = _.object(_.map([
    'add', 'remove', 'update', 'reset', 'sort', 'destroy', 'request', 'sync', 'error',
    'invalid', 'change', 'changeId'
  ], function (key) { return [key, true]; }));

  // What Backbone and jQuery.ajax put into a sync's options for their own use:
  // callbacks, the collection, flags, HTTP settings. The server gets the rest, as JSON.
  var LOCAL_OPTIONS = _.object(_.map([
    'success', 'error', 'collection', 'attrs', 'xhr', 'context', 'parse', 'wait', 'patch',
    'validate', 'reset', 'merge', 'add', 'remove', 'silent', 'unset', 'at', 'sort', 'url',
    'emulateHTTP', 'emulateJSON', 'timeout', 'beforeSend', 'type', 'contentType',
    'processData', 'dataType', 'username', 'password', 'headers', 'xhrFields', 'crossDomain',
    'cache', 'async', 'global', 'complete', 'statusCode', 'accepts', 'contents', 'converters',
    'dataFilter', 'ifModified', 'isLocal', 'jsonp', 'jsonpCallback', 'method', 'mimeType',
    'scriptAttrs', 'scriptCharset', 'traditional', 'retry', 'onConflict'
  ], function (key) { return [key, true]; }));

  var state = {
    root: null,          // the "/" socket returned by connect()
    url: undefined,
    ioOptions: {},
    syncTimeout: DEFAULT_SYNC_TIMEOUT,
    refetch: true,       // refetch bound objects when the server cannot replay what they missed
    links: {},           // "name\u0000channel" -> Link
    sharedNames: {},     // backend names whose link uses the root socket's Manager
    extraRoots: [],      // Managers of second channels of one backend (see managerFor)
    // Positions of released links: a link opened again for the same backend
    // and channel resumes from them, so a save() followed by bindBackend()
    // hears what was written between the two.
    released: {},
    // Writes: retried with their idempotency key until answered or given up.
    retryWrites: true,
    giveUpAfter: DEFAULT_GIVE_UP,
    onConflict: 'keep',          // or 'server': a Conflict's `current` replaces the model
    versionAttribute: '_version',
    persistKey: null,            // the localStorage key of the persisted queue, when on
    // Token refresh: the page's function for a fresh token, and the timer that calls it.
    refreshToken: null,
    refreshBefore: null,
    refreshTimer: null,
    expiresAt: null              // seconds since the epoch, when known
  };
  var delivering = null;  // {event, method} while notify() triggers models
  var seq = 0;            // every sync's place in the page's order

  function noop() {}

  function error(name, message, status, extra) {
    return _.extend({name: name, message: message, status: status}, extra);
  }

  // A user callback that throws must not break socket.io's packet handling,
  // nor the client's own bookkeeping, yet it should still reach the console.
  function guarded(fn, context, args) {
    try {
      return fn.apply(context, args);
    } catch (exc) {
      setTimeout(function () { throw exc; }, 0);
    }
  }

  // Runs fn after the current call stack, as an answer from the server would.
  function later(fn) {
    if (typeof Promise === 'function') Promise.resolve().then(fn);
    else setTimeout(fn, 0);
  }

  function announce(name) {
    guarded(Backbone.io.trigger, Backbone.io, _.toArray(arguments));
  }

  function deferred() {
    var $ = Backbone.$;
    if ($ && typeof $.Deferred === 'function') {
      var d = $.Deferred();
      return {
        promise: d.promise(),
        resolve: function (value) { d.resolve(value); },
        reject: function (reason) { d.reject(reason); }
      };
    }
    var resolve, reject;
    var promise = new Promise(function (yes, no) { resolve = yes; reject = no; });
    // Pages that use the success/error callbacks never look at the promise;
    // a failed save must not also be reported as an unhandled rejection.
    promise.catch(noop);
    return {promise: promise, resolve: resolve, reject: reject};
  }

  function positive(value) {
    return typeof value === 'number' && value > 0 && value < Infinity;
  }

  // -- idempotency keys ------------------------------------------------------
  //
  // Every write carries a fresh key, the same on every attempt, so the server
  // runs it once however often the client has to send it.

  function cryptoObject() {
    if (typeof crypto !== 'undefined' && crypto) return crypto;
    return typeof globalThis !== 'undefined' ? globalThis.crypto : undefined;
  }

  function idempotencyKey() {
    var c = cryptoObject();
    // randomUUID exists only in secure contexts (https, localhost).
    if (c && typeof c.randomUUID === 'function') {
      try { return c.randomUUID(); } catch (exc) { /* fall through */ }
    }
    var bytes = [], i;
    if (c && typeof c.getRandomValues === 'function') {
      bytes = Array.prototype.slice.call(c.getRandomValues(new Uint8Array(16)));
    } else {
      for (i = 0; i < 16; i++) bytes.push(Math.floor(Math.random() * 256));
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;  // a version 4 UUID, as randomUUID gives
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = _.map(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join('');
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20),
      hex.slice(20)].join('-');
  }

  // -- pending marks ---------------------------------------------------------
  //
  // model.pending is true while a write of the model is unanswered (queued
  // while offline, being retried, or just sent); `pending` (model, pending)
  // is triggered when it changes, so a view can show "sending...".

  Backbone.Model.prototype.pending = false;

  function markPending(model, options) {
    if (!(model instanceof Backbone.Model)) return;
    model._backboneioWrites = (model._backboneioWrites || 0) + 1;
    if (model.pending) return;
    model.pending = true;
    guarded(model.trigger, model, ['pending', model, true, options]);
  }

  // Clears the mark at once (so the callbacks see it cleared); the returned
  // function triggers the event, after the callbacks have applied the answer.
  function unmarkPending(model, options) {
    if (!(model instanceof Backbone.Model) || !model._backboneioWrites) return noop;
    model._backboneioWrites -= 1;
    if (model._backboneioWrites || !model.pending) return noop;
    model.pending = false;
    return function () { guarded(model.trigger, model, ['pending', model, false, options]); };
  }

  // -- positions -------------------------------------------------------------
  //
  // A server with a change log gives every write a position in a stream: the
  // backend's writes made without a channel, or those on one channel. A socket
  // hears at most two streams (no channel, and the channel it listens on), so
  // a link keeps the last position it has of each and hands them back as
  // `since` when it listens again. A 0.4 server sends none: nothing is kept.

  function isPosition(value) {
    return _.isObject(value) && (value.channel === null || _.isString(value.channel)) &&
      _.isString(value.epoch) && typeof value.seq === 'number' && isFinite(value.seq);
  }

  function streamOf(position) {
    return position.channel === null ? '' : '#' + position.channel;
  }

  function positionsIn(list) {
    return _.isArray(list) ? _.filter(list, isPosition) : [];
  }

  // The listen answer: 0.4 servers ack (options) or ({error}); error-first
  // acks are (null, options) or (error).
  function listenAnswer(args) {
    var first = args[0], second = args[1];
    if (first == null) return _.isObject(second) && !_.isArray(second) ? second : null;
    if (!_.isObject(first)) return null;
    if (first.error || _.has(first, 'event') || _.has(first, 'channel')) return first;
    return {error: first};
  }

  // -- backend specs ---------------------------------------------------------

  function parseSpec(spec) {
    var name = spec, channel = null;
    if (_.isObject(spec)) {
      name = spec.name;
      channel = spec.channel == null ? null : spec.channel;
    }
    if (!_.isString(name) || !name || name.indexOf('/') !== -1) {
      throw new TypeError('backend must be a name or {name, channel}; got ' + JSON.stringify(spec));
    }
    if (channel !== null && (!_.isString(channel) || !channel)) {
      throw new TypeError('backend channel must be a non-empty string or null; got ' +
        JSON.stringify(channel));
    }
    return {name: name, channel: channel};
  }

  function keyOf(spec) {
    return spec.name + '\u0000' + (spec.channel === null ? '' : spec.channel);
  }

  // -- Link: one socket listening on one backend (and channel) ---------------
  //
  // A link holds the objects that want its notifications (subscribers) and the
  // syncs not yet answered. When it holds neither it is closed, so neither
  // discarded objects nor sockets of channels no longer used pile up.

  function Link(spec) {
    this.name = spec.name;
    this.channel = spec.channel;
    this.key = keyOf(spec);
    this.subscribers = [];
    this.queue = [];      // syncs waiting until the socket listens
    this.inflight = [];   // syncs sent, waiting for their ack
    this.socket = null;
    this.extra = null;    // the root socket of this link's own Manager, if it has one
    this.ready = false;
    this.event = null;
    this.failure = null;  // an error every sync gets at once (refused, not allowed to listen)
    this.releasing = false;
    this.positions = {};  // stream ('' or '#' + channel) -> the last position heard of it
    this.early = null;    // notifications heard while the listen is unanswered
    this.holding = null;  // a sync sent in order: the next waits for its answer
    this.flushTimer = null;
    this.live = {};       // subscription id -> the live query of a collection (see live queries)
    this.liveSocket = null;
  }

  Link.prototype.describe = function () {
    return "backend '" + this.name + "'" + (this.channel === null ? '' : " (channel '" +
      this.channel + "')");
  };

  Link.prototype.open = function () {
    var link = this;
    var socket = this.socket = managerFor(this).socket('/' + this.name, {auth: state.ioOptions.auth});
    socket.on('connect', function () { if (socket === link.socket) link.listen(); });
    socket.on('disconnect', function (reason) {
      if (socket === link.socket) link.disconnected(reason);
    });
    socket.on('connect_error', function (err) {
      if (socket === link.socket) link.connectFailed(err);
    });
    socket.on('synced', function (method, model, position) {
      if (socket !== link.socket) return;
      // What a resumed listen replays comes before its answer (which also
      // says the event prefix): hold it until then.
      if (link.ready) link.receive(method, model, position, true);
      else if (link.early) link.early.push([method, model, position]);
    });
    socket.on('error', function (payload) {
      announce('error', (payload && payload.error) || payload, link.info());
    });
    if (socket.connected) this.listen();
  };

  Link.prototype.close = function (why) {
    var socket = this.socket;
    this.socket = null;
    this.ready = false;
    this.early = null;
    this.failAll(this.inflight.concat(this.queue), why);
    if (socket) {
      socket.removeAllListeners();
      socket.disconnect();
    }
  };

  Link.prototype.info = function () {
    return {backend: this.name, channel: this.channel};
  };

  Link.prototype.listen = function () {
    var link = this, socket = this.socket;
    var since = _.values(this.positions);
    var args = ['listen', this.channel];
    // A 0.4 server takes (channel, ack): only a server that sent positions gets `since`.
    if (since.length) args.push({since: since});
    this.early = [];
    args.push(function () {
      if (socket !== link.socket || !socket.connected) return;
      var early = link.early || [];
      link.early = null;
      var answer = listenAnswer(arguments);
      if (!answer || answer.error) {
        var failure = (answer && answer.error) ||
          error('BadRequest', 'The server gave no answer to listen on ' + link.describe(), 400);
        // Syncs on a channel we could not join would reach the wrong audience.
        if (link.channel !== null) {
          link.failure = failure;
          link.failAll(link.queue.slice(), failure);
          liveLinkFailed(link, failure);
        } else {
          link.event = link.event || 'backend';
          link.failure = null;
          link.ready = true;
          link.flush();
          liveListened(link);
        }
        announce('error', failure, link.info());
        return;
      }
      link.event = answer.event || 'backend';
      link.failure = null;
      var replayed = 0;
      _.each(early, function (entry) {
        if (link.receive(entry[0], entry[1], entry[2], false)) replayed += 1;
      });
      // The heads: what a later resume starts from, even if nothing is heard before it.
      _.each(positionsIn(answer.positions), function (position) { link.advance(position); });
      var recovered = !since.length || answer.recovered !== false;
      link.ready = true;
      link.flush();
      liveListened(link);
      var info = {
        resumed: since.length > 0, recovered: recovered, replayed: replayed,
        failed: positionsIn(answer.failed)
      };
      announce('listen', link.name, link.channel, answer, info);
      if (!recovered) link.resync(info.failed, 'history');
    });
    socket.emit.apply(socket, args);
  };

  // Takes the last position of a stream forward (or to another epoch).
  Link.prototype.advance = function (position) {
    var last = this.positions[streamOf(position)];
    if (last && last.epoch === position.epoch && last.seq >= position.seq) return;
    this.positions[streamOf(position)] = {
      channel: position.channel, epoch: position.epoch, seq: position.seq
    };
  };

  // One `synced` notification; false when it was a repeat, and dropped.
  Link.prototype.receive = function (method, model, position, live) {
    var lost = false;
    if (isPosition(position)) {
      var last = this.positions[streamOf(position)];
      if (last && last.epoch === position.epoch && position.seq <= last.seq) return false;
      // A new epoch heard while connected: the stream's history was lost,
      // so what was written just before may never arrive.
      lost = live && last && last.epoch !== position.epoch ? last : false;
      this.advance(position);
    }
    this.notify(this.event, method, model, []);
    if (lost) this.resync([lost], 'epoch');
    return true;
  };

  // The server could not replay what this link missed: its objects hear
  // `<event>:resync` and, unless they opted out, the bound ones fetch again.
  Link.prototype.resync = function (failed, reason) {
    var link = this, event = this.event || 'backend';
    var info = {backend: this.name, channel: this.channel, failed: failed, reason: reason};
    var members = this.subscribers.slice();
    announce('resync', this.name, this.channel, info);
    _.each(members, function (obj) {
      guarded(obj.trigger, obj, [event + ':resync', obj, info]);
    });
    if (!state.refetch) return;
    _.each(members, function (obj) {
      var sub = obj._backboneio;
      // (a resync listener may have unbound it)
      if (!sub || !sub.bound || sub.refetch === false || !_.contains(link.subscribers, obj)) return;
      // A live collection's window comes from its subscription, not from a read.
      if (liveOf(obj)) return;
      if (obj instanceof Backbone.Model && obj.isNew()) return;
      guarded(obj.fetch, obj, [_.extend({}, sub.lastRead)]);
    });
  };

  Link.prototype.disconnected = function (reason) {
    this.ready = false;
    // Unapplied: the resume asks for them again.
    this.early = null;
    this.holding = null;
    liveDisconnected(this);
    // Writes go back in line with their keys, to be sent again once
    // reconnected; a read (or a write that may not be retried) fails.
    var inflight = this.inflight.slice();
    this.requeue(_.filter(inflight, function (entry) { return entry.retry; }));
    this.failAll(_.reject(inflight, function (entry) { return entry.retry; }), error('Unavailable',
      'The connection to ' + this.describe() + ' was lost (' + reason + ') before the server ' +
      'answered; the change may or may not have been applied', 503));
    if (!this.socket.active) {
      // The server closed this socket on purpose; socket.io will not reconnect it.
      this.failure = error('Unavailable', 'The server disconnected ' + this.describe(), 503);
      this.failAll(this.queue.slice(), this.failure);
    }
    announce('disconnect', this.name, this.channel, reason);
  };

  Link.prototype.connectFailed = function (err) {
    if (this.socket.active) return;  // unreachable for now: socket.io retries, syncs wait
    var data = err && err.data;
    this.failure = error('ConnectionRefused', (err && err.message) || 'Connection refused',
      (data && data.status) || 403, data ? {data: data} : {});
    this.failAll(this.queue.slice(), this.failure);
    liveLinkFailed(this, this.failure);
    announce('error', this.failure, this.info());
  };

  // Delivers one notification. Bound subscribers apply it first, so listeners
  // see it applied. A model in a collection triggers only its own listeners
  // (Backbone's forwarding is held back) and its collection hears it once,
  // however many of its models subscribe.
  Link.prototype.notify = function (event, method, model, skip) {
    var members = _.filter(this.subscribers, function (obj) {
      if (_.contains(skip, obj)) return false;
      var sub = obj._backboneio;
      if (sub.bound || hears(obj, event)) return true;
      leave(obj, sub);  // its listeners were for other events after all
      return false;
    });
    _.each(members, function (obj) {
      if (obj._backboneio.bound) guarded(applyChange, null, [obj, method, model]);
    });
    var targets = [];
    _.each(members, function (obj) {
      targets.push(obj);
      if (obj instanceof Backbone.Model && obj.collection && !_.contains(skip, obj.collection)) {
        targets.push(obj.collection);
      }
    });
    var outer = delivering;
    delivering = {event: event, method: method};
    try {
      _.each(_.uniq(targets), function (target) {
        guarded(target.trigger, target, [event, method, model]);
        guarded(target.trigger, target, [event + ':' + method, model]);
      });
    } finally {
      delivering = outer;
    }
  };

  Link.prototype.submit = function (entry) {
    if (this.failure) {
      var why = this.failure;
      // As an answer would: after Backbone.sync returns, so save({wait}) has
      // restored the attributes and destroy() has removed the model.
      later(function () { entry.settle(why); });
      return;
    }
    // A sync that has to wait (offline, behind others) is later sent in
    // order: each after the previous one's answer, so queued writes land
    // in the order they were made.
    entry.serial = !(this.ready && this.socket && this.socket.connected && !this.holding &&
      !this.queue.length);
    this.queue.push(entry);
    persist();
    if (this.ready) this.flush();
  };

  Link.prototype.flush = function () {
    var link = this;
    while (this.ready && this.socket && this.socket.connected && this.queue.length &&
           !this.holding) {
      var entry = this.queue[0];
      // The page's previous write of the same model comes first.
      if (entry.after && !entry.after.settled) return;
      var wait = (entry.notBefore || 0) - Date.now();
      if (wait > 0) {
        if (!this.flushTimer) {
          this.flushTimer = setTimeout(function () {
            link.flushTimer = null;
            link.flush();
          }, wait);
        }
        return;
      }
      this.send(this.queue.shift());
    }
  };

  // Puts unanswered writes back in line, in the order they were made.
  Link.prototype.requeue = function (entries) {
    if (!entries.length) return;
    var link = this;
    _.each(entries, function (entry) {
      link.inflight = _.without(link.inflight, entry);
      if (link.holding === entry) link.holding = null;
      entry.sent = false;
      entry.serial = true;
      if (entry.attemptTimer) clearTimeout(entry.attemptTimer);
      entry.attemptTimer = null;
    });
    this.queue = _.sortBy(_.difference(this.queue, entries).concat(entries), 'seq');
  };

  // An attempt went unanswered, or the server was unavailable: the same
  // write (the same key) goes again after a pause.
  Link.prototype.retryLater = function (entry, why) {
    entry.attempts += 1;
    entry.notBefore = Date.now() + RETRY_DELAYS[Math.min(entry.attempts, RETRY_DELAYS.length) - 1];
    this.requeue([entry]);
    announce('retry', this.info(), {method: entry.request.method, attempts: entry.attempts,
      idempotencyKey: entry.key, reason: why});
    this.flush();
  };

  Link.prototype.send = function (entry) {
    var link = this, socket = this.socket;
    prepare(entry);
    entry.sent = true;
    entry.attempts = entry.attempts || 1;
    this.inflight.push(entry);
    if (entry.serial) this.holding = entry;
    if (entry.retry) {
      entry.attemptTimer = setTimeout(function () {
        entry.attemptTimer = null;
        if (!entry.settled && _.contains(link.inflight, entry)) {
          link.retryLater(entry, error('Timeout', 'No answer from ' + link.describe() +
            ' within ' + entry.timeout + ' ms', 504));
        }
      }, entry.timeout);
    }
    socket.emit('sync', entry.request, function (err, result, extra) {
      // An earlier attempt's answer is as good as the latest one's: the key
      // made them one write. Only the first answer counts.
      if (entry.settled) return;
      link.forget(entry);
      if (link.holding === entry) link.holding = null;
      if (entry.attemptTimer) clearTimeout(entry.attemptTimer);
      entry.attemptTimer = null;
      var failed = err ? (err.error || err) : null;
      var method = entry.request.method;
      if (failed && entry.retry && failed.name === 'Unavailable' && socket === link.socket) {
        // Nothing was written (the store or the change log was down): try again.
        link.retryLater(entry, failed);
        return;
      }
      // A read answers with the heads taken before it: changes up to them are in the result.
      if (!failed && extra && link.socket) {
        _.each(positionsIn(extra.positions), function (position) { link.advance(position); });
      }
      if (!failed) entry.answer = result;
      entry.settle(failed, result);
      // The server tells every other client; the other objects of this page
      // share this socket, so they hear it from here.
      if (!failed && WRITES[method]) echo(link, method, result, entry.origin);
      link.flush();
    });
  };

  Link.prototype.forget = function (entry) {
    this.queue = _.without(this.queue, entry);
    this.inflight = _.without(this.inflight, entry);
    if (this.holding === entry) this.holding = null;
  };

  // Everything is dequeued before any callback runs, so a callback that
  // syncs again or throws cannot disturb the rest.
  Link.prototype.failAll = function (entries, why) {
    var link = this;
    _.each(entries, function (entry) { link.forget(entry); });
    _.each(entries, function (entry) { guarded(entry.settle, entry, [why]); });
  };

  Link.prototype.idle = function () {
    return !this.subscribers.length && !this.queue.length && !this.inflight.length &&
      !presences[this.key] && _.isEmpty(this.live);
  };

  // Closes a channel's link once the current call stack is done, if nothing
  // needs it then (a fetch followed by bindBackend() keeps one socket): pages
  // that move between rooms must not keep a socket per room. A backend's
  // link without a channel stays, one per backend, so 'listen' and
  // 'disconnect' keep reporting the connection. A refused link stays, so
  // later syncs fail at once.
  Link.prototype.release = function () {
    var link = this;
    if (link.channel === null || link.releasing || !link.idle()) return;
    link.releasing = true;
    setTimeout(function () {
      link.releasing = false;
      if (!link.idle() || link.failure || state.links[link.key] !== link) return;
      delete state.links[link.key];
      if (!_.isEmpty(link.positions)) state.released[link.key] = link.positions;
      link.close(null);
      if (link.extra) {
        link.extra.disconnect();
        state.extraRoots = _.without(state.extraRoots, link.extra);
      } else {
        state.sharedNames[link.name] = false;
      }
    }, 0);
  };

  function linkFor(spec) {
    var link = state.links[keyOf(spec)];
    if (!link) {
      link = state.links[keyOf(spec)] = new Link(spec);
      if (state.released[link.key]) {
        link.positions = state.released[link.key];
        delete state.released[link.key];
      }
      if (state.root) link.open();
    }
    return link;
  }

  // The sender's own page: its objects on the links the server would have
  // notified (the sender's channel, or every channel when it has none).
  function echo(link, method, model, origin) {
    var skip = origin ? [origin, origin.collection] : [];
    var links = link.channel !== null ? [link] : _.filter(state.links, function (other) {
      return other.name === link.name;
    });
    _.each(links, function (other) {
      guarded(other.notify, other, [link.event || other.event || 'backend', method, model, skip]);
    });
  }

  // Backends share the connection of the "/" socket. A socket listens on one
  // channel of its namespace, so a second channel of the same backend needs a
  // connection of its own.
  function managerFor(link) {
    if (!state.sharedNames[link.name]) {
      state.sharedNames[link.name] = true;
      return state.root.io;
    }
    var extra = link.extra = io(state.url, _.extend({}, state.ioOptions, {forceNew: true}));
    state.extraRoots.push(extra);
    return extra.io;
  }

  // -- routing and subscriptions ---------------------------------------------
  //
  // obj._backboneio: {spec, listenSpec, bound, muted, link}. `spec` routes the
  // object's syncs; `listenSpec` is where its notifications come from (a
  // collection with no backend listens on its model class's). `link` is set
  // while the object is a subscriber: while it is bound, or has listeners
  // that may be for notifications.

  function specFrom(obj) {
    var spec = _.result(obj, 'backend');
    return spec ? parseSpec(spec) : null;
  }

  function route(obj) {
    if (_.has(obj, '_backboneio')) return obj._backboneio;
    var spec = specFrom(obj), listenSpec = spec;
    if (!spec && obj instanceof Backbone.Collection && obj.model &&
        obj.model.prototype instanceof Backbone.Model) {
      try {
        listenSpec = specFrom(obj.model.prototype);
      } catch (exc) {
        listenSpec = null;  // a backend function meant for instances
      }
    }
    if (!listenSpec) return null;
    obj._backboneio = {spec: spec, listenSpec: listenSpec, bound: false, muted: false, link: null};
    return obj._backboneio;
  }

  function isForwarding(handler) {
    var ctx = handler.context;
    return ctx instanceof Backbone.Collection && handler.callback === ctx._onModelEvent;
  }

  // Whether `name` may be a notification event; `prefix` once the server said it.
  function notificationName(name, prefix) {
    if (name === 'all') return true;
    if (prefix) return name === prefix || name.indexOf(prefix + ':') === 0;
    var colon = name.indexOf(':');
    if (colon === -1) return !BACKBONE_EVENTS[name];
    return WRITES[name.slice(colon + 1)] === true;
  }

  function hears(obj, prefix) {
    return _.some(obj._events, function (handlers, name) {
      return notificationName(name, prefix) && _.some(handlers, function (handler) {
        return !isForwarding(handler);
      });
    });
  }

  function join(obj, sub) {
    var link = sub.link = linkFor(sub.listenSpec);
    link.subscribers.push(obj);
    if (obj instanceof Backbone.Model && !sub.destroyHook) {
      sub.destroyHook = true;
      obj.once('destroy', function () { unsubscribe(obj); });
    }
  }

  function leave(obj, sub) {
    var link = sub.link;
    if (!link) return;
    sub.link = null;
    link.subscribers = _.without(link.subscribers, obj);
    link.release();
  }

  function refresh(obj) {
    var sub = obj._backboneio;
    if (!sub) return;
    var known = sub.link || state.links[keyOf(sub.listenSpec)];
    var wanted = !sub.muted && (sub.bound || hears(obj, known && known.event));
    if (wanted && !sub.link) join(obj, sub);
    else if (!wanted && sub.link) leave(obj, sub);
  }

  function unsubscribe(obj) {
    var sub = obj._backboneio;
    if (!sub) return;
    sub.bound = false;
    sub.muted = true;
    leave(obj, sub);
  }

  // The backend a sync of `obj` goes to: its own, else its collection's.
  function routeOf(obj) {
    if (!obj) return null;
    var sub = route(obj);
    if (sub && sub.spec) return sub.spec;
    return obj.collection ? routeOf(obj.collection) : null;
  }

  function wrapConstructor(Original, isModel) {
    var Wrapped = function (first, options) {
      // A collection passes its constructor options on to the models it
      // creates; its backend is not theirs.
      var inherited = isModel && options && options.collection &&
        options.collection.backend === options.backend;
      if (options && options.backend && !inherited) this.backend = options.backend;
      var result = Original.apply(this, arguments);
      if (route(this)) refresh(this);  // listeners added by initialize()
      return result;
    };
    _.extend(Wrapped, Original);
    Wrapped.prototype = Original.prototype;
    Wrapped.prototype.constructor = Wrapped;
    return Wrapped;
  }

  Backbone.Model = wrapConstructor(Backbone.Model, true);
  Backbone.Collection = wrapConstructor(Backbone.Collection, false);
  Backbone.Collection.prototype.model = Backbone.Model;

  // Subscribing follows the listeners: on/off (and so once, listenTo and
  // stopListening, which call them) re-check an object with a backend.
  _.each([Backbone.Model, Backbone.Collection], function (Class) {
    var proto = Class.prototype, on = proto.on, off = proto.off;
    proto.on = proto.bind = function () {
      var result = on.apply(this, arguments);
      if (_.has(this, '_backboneio')) refresh(this);
      return result;
    };
    proto.off = proto.unbind = function (name, callback, context) {
      var result = off.apply(this, arguments);
      var sub = _.has(this, '_backboneio') && this._backboneio;
      if (!sub) return result;
      // A model leaving its collection (remove, reset) stops listening.
      if (name === 'all' && context instanceof Backbone.Collection &&
          callback === context._onModelEvent && !this.collection) {
        sub.bound = false;
      }
      refresh(this);
      return result;
    };
  });

  // Backbone forwards every model event to its collections; a notification
  // already reaches the collection once from notify().
  var forwardModelEvent = Backbone.Collection.prototype._onModelEvent;
  Backbone.Collection.prototype._onModelEvent = function (event) {
    if (delivering && (event === delivering.event ||
        event === delivering.event + ':' + delivering.method)) return;
    return forwardModelEvent.apply(this, arguments);
  };

  // -- bindBackend -----------------------------------------------------------

  // One set() pass, so a replacement triggers 'change' once: Backbone runs
  // nested set() calls as one change, which is what this does.
  function replaceAttributes(model, attrs) {
    var gone = _.difference(_.keys(model.attributes), _.keys(attrs));
    if (!gone.length) return model.set(attrs);
    if (model._changing) {
      model.set(attrs);
      return model.set(_.object(gone, []), {unset: true});
    }
    model._changing = true;
    model._previousAttributes = _.clone(model.attributes);
    model.changed = {};
    try {
      model.set(attrs);
      model.set(_.object(gone, []), {unset: true});
    } finally {
      var pending = model._pending;
      model._pending = false;
      model._changing = false;
      if (pending) model.trigger('change', model, pending);
    }
  }

  function applyChange(target, method, attrs) {
    if (!_.isObject(attrs) || _.isArray(attrs)) return;
    if (target instanceof Backbone.Model) {
      if (attrs[target.idAttribute] == null || attrs[target.idAttribute] !== target.id) return;
      if (method === 'update') replaceAttributes(target, attrs);
      else if (method === 'patch') target.set(attrs);
      return;
    }
    // A live query's window changes only by its own events.
    if (liveOf(target)) return;
    var existing = target.get(attrs);
    if (method === 'create') {
      if (existing) existing.set(attrs);
      else target.add(attrs);
    } else if (method === 'update') {
      if (existing) replaceAttributes(existing, attrs);
    } else if (method === 'patch') {
      if (existing) existing.set(attrs);
    } else if (method === 'delete') {
      if (existing) target.remove(existing);
    }
  }

  function bindBackend(options) {
    var sub = route(this);
    if (!sub) throw new Error('bindBackend() needs a backend on this ' +
      (this instanceof Backbone.Model ? 'model' : 'collection'));
    if (options && _.has(options, 'refetch')) sub.refetch = options.refetch !== false;
    sub.bound = true;
    sub.muted = false;
    refresh(this);
    return this;
  }

  function unbindBackend() {
    var sub = _.has(this, '_backboneio') && this._backboneio;
    if (sub) {
      sub.bound = false;
      refresh(this);
    }
    return this;
  }

  _.each([Backbone.Model, Backbone.Collection], function (Class) {
    Class.prototype.bindBackend = bindBackend;
    Class.prototype.unbindBackend = unbindBackend;
  });

  // -- sync ------------------------------------------------------------------

  function wireModel(method, model, options) {
    if (model instanceof Backbone.Collection) return {};
    var data = options.attrs || model.toJSON(options);
    if (method === 'patch' && !model.isNew()) {
      data = _.clone(data);
      data[model.idAttribute] = model.id;
    }
    return data;
  }

  function wireOptions(options) {
    var out = {};
    _.each(options, function (value, key) {
      if (LOCAL_OPTIONS[key] || value === undefined || _.isFunction(value)) return;
      if (value instanceof Backbone.Model || value instanceof Backbone.Collection) return;
      var text;
      try {
        text = JSON.stringify(value);
      } catch (exc) {
        return;  // cyclic or otherwise not JSON: not for the server
      }
      if (text !== undefined) out[key] = JSON.parse(text);
    });
    return out;
  }

  function timeoutError(entry) {
    var link = entry.link, ms = entry.timeout;
    return error('Timeout', entry.sent
      ? 'No answer from ' + link.describe() + ' within ' + ms + ' ms'
      : 'Could not reach ' + link.describe() + ' within ' + ms + ' ms' +
        (state.root ? ' (the server is unreachable)' : ' (Backbone.io.connect() was not called)'),
      504, {method: entry.request.method});
  }

  // A Conflict's `current` taken as the model (onConflict: 'server'), before
  // the error callbacks run, so they and the page see the stored copy.
  function takeServers(entry, current) {
    var model = entry.origin;
    if (!(model instanceof Backbone.Model)) return;
    if (entry.request.method === 'delete') {
      // destroy() without wait took it out of its collection already.
      var collection = entry.collection;
      if (collection && !collection.get(current[model.idAttribute])) collection.add(current);
      return;
    }
    replaceAttributes(model, current);
  }

  // Just before a write is sent: one made on top of the page's previous write
  // of the same model takes what that write's answer gave it. A second save()
  // of a model whose create was pending becomes an update of the created model,
  // and a version the previous write started from becomes the one it produced.
  function prepare(entry) {
    var previous = entry.after;
    entry.after = null;
    if (!previous || !previous.answer || !_.isObject(previous.answer)) return;
    var request = entry.request, model = request.model, origin = entry.origin;
    var answer = previous.answer, version = state.versionAttribute;
    if (request.method === 'create' && previous.request.method === 'create' &&
        origin instanceof Backbone.Model && !origin.isNew()) {
      request.method = 'update';
      model[origin.idAttribute] = origin.id;
      if (_.has(answer, version) && model[version] == null) model[version] = answer[version];
      persist();
      return;
    }
    if (_.has(model, version) && _.has(answer, version) &&
        model[version] === previous.request.model[version]) {
      model[version] = answer[version];
      persist();
    }
  }

  function makeEntry(link, method, request, origin, options, callbacks) {
    // jQuery reads timeout: 0 as "no limit"; here every sync has one.
    var own = positive(options.timeout);
    var write = WRITES[method] === true;
    var entry = {
      link: link,
      origin: origin,
      collection: origin instanceof Backbone.Model ? origin.collection : null,
      request: request,
      seq: seq += 1,
      write: write,
      key: write ? request.options.idempotencyKey : null,
      retry: write && state.retryWrites && options.retry !== false,
      onConflict: options.onConflict || state.onConflict,
      attempts: 0,
      sent: false,
      settled: false,
      timer: null,
      attemptTimer: null,
      ownTimeout: own,
      started: callbacks.started || Date.now(),
      timeout: own ? options.timeout : state.syncTimeout,
      arm: function (ms) {
        if (entry.timer) clearTimeout(entry.timer);
        entry.timeout = ms;
        entry.timer = setTimeout(function () {
          link.forget(entry);
          entry.settle(timeoutError(entry));
          link.flush();
        }, Math.max(0, ms - (Date.now() - entry.started)));
      },
      settle: function (err, result) {
        if (entry.settled) return;
        entry.settled = true;
        if (entry.timer) clearTimeout(entry.timer);
        if (entry.attemptTimer) clearTimeout(entry.attemptTimer);
        persist();
        var unmark = write ? unmarkPending(origin, options) : noop;
        if (err) {
          if (err.name === 'Conflict' && _.isObject(err.current) && entry.onConflict === 'server') {
            guarded(takeServers, null, [entry, err.current]);
          }
          if (callbacks.error) guarded(callbacks.error, null, [err]);
        } else if (callbacks.success) {
          guarded(callbacks.success, null, [result]);
        }
        unmark();
        link.release();
        link.flush();
      }
    };
    if (entry.retry) {
      // One attempt waits `timeout` for its answer; the write is given up
      // (Timeout) only after `giveUpAfter`, counted from when it was made.
      entry.timeout = own ? options.timeout : state.syncTimeout;
      entry.timer = setTimeout(function () {
        link.forget(entry);
        entry.timeout = state.giveUpAfter;
        entry.settle(timeoutError(entry));
        link.flush();
      }, Math.max(0, state.giveUpAfter - (Date.now() - entry.started)));
    } else {
      entry.arm(entry.timeout);
    }
    return entry;
  }

  function backendSync(method, model, options, spec) {
    var link = linkFor(spec);
    var done = deferred();
    var success = options.success, failure = options.error;
    var request = {method: method, model: wireModel(method, model, options), options: wireOptions(options)};
    if (WRITES[method] && !(_.isString(request.options.idempotencyKey) &&
        request.options.idempotencyKey)) {
      request.options.idempotencyKey = idempotencyKey();
    }
    var entry = makeEntry(link, method, request, model, options, {
      success: function (result) {
        if (success) guarded(success, null, [result]);
        guarded(done.resolve, null, [result]);
      },
      error: function (err) {
        if (failure) guarded(failure, null, [err]);
        guarded(done.reject, null, [err]);
      }
    });
    if (method === 'create' && entry.collection) {
      // Counted while unanswered: a live query of that collection waits for it (see there).
      var made = entry.collection;
      made._backboneioCreates = (made._backboneioCreates || 0) + 1;
      var settle = entry.settle;
      entry.settle = function () {
        var first = !entry.settled;
        settle.apply(entry, arguments);
        if (first) guarded(liveCreateSettled, null, [made]);
      };
    }
    if (entry.write && model instanceof Backbone.Model) {
      // After the model's previous write, if one is still unanswered on this link.
      var previous = model._backboneioLast;
      if (previous && !previous.settled && previous.link === link) entry.after = previous;
      model._backboneioLast = entry;
      markPending(model, options);
    }
    link.submit(entry);
    // Backbone's own sync triggers it once the request is under way.
    guarded(model.trigger, model, ['request', model, done.promise, options]);
    return done.promise;
  }

  // -- the persisted queue (connect({persistQueue})) -------------------------
  //
  // Off by default. When on, the unanswered writes are kept in localStorage
  // under one key and sent again by the next page of the same origin that
  // connects with the option. Their callbacks are gone by then: the results
  // reach the page's objects as notifications, failures as Backbone.io's
  // `error` event.

  function storage() {
    try {
      return typeof localStorage !== 'undefined' ? localStorage : null;
    } catch (exc) {
      return null;  // a sandboxed frame, or storage disabled
    }
  }

  function unanswered() {
    var entries = [];
    _.each(state.links, function (link) {
      _.each(link.inflight.concat(link.queue), function (entry) {
        if (entry.write && !entry.settled) entries.push(entry);
      });
    });
    return _.sortBy(entries, 'seq');
  }

  function persist() {
    var store = state.persistKey && storage();
    if (!store) return;
    var saved = _.map(unanswered(), function (entry) {
      return {backend: entry.link.name, channel: entry.link.channel, request: entry.request,
        started: entry.started};
    });
    try {
      if (saved.length) store.setItem(state.persistKey, JSON.stringify(saved));
      else store.removeItem(state.persistKey);
    } catch (exc) {
      announce('error', error('Unavailable', 'Could not save the queue of writes: ' +
        (exc && exc.message), 503), {backend: null, channel: null});
    }
  }

  function restorePersisted() {
    var store = state.persistKey && storage();
    var text = store && store.getItem(state.persistKey);
    if (!text) return;
    var saved;
    try {
      saved = JSON.parse(text);
    } catch (exc) {
      saved = null;
    }
    var known = _.object(_.map(unanswered(), function (entry) { return [entry.key, true]; }));
    _.each(_.isArray(saved) ? saved : [], function (item) {
      var request = item && item.request;
      if (!request || !WRITES[request.method] || !_.isObject(request.options) ||
          !_.isString(request.options.idempotencyKey) || known[request.options.idempotencyKey]) {
        return;
      }
      var spec;
      try {
        spec = parseSpec({name: item.backend, channel: item.channel});
      } catch (exc) {
        return;
      }
      var link = linkFor(spec);
      var entry = makeEntry(link, request.method, request, null, {}, {
        started: positive(item.started) ? item.started : Date.now(),
        error: function (err) { announce('error', err, link.info()); }
      });
      known[entry.key] = true;
      link.submit(entry);
    });
    persist();
  }

  // -- token refresh ---------------------------------------------------------

  var DEFAULT_PERSIST_KEY = 'backboneio.queue';
  // connect() options that are the client's own, not socket.io's.
  var CLIENT_OPTIONS = ['retryWrites', 'giveUpAfter', 'onConflict', 'versionAttribute',
    'refreshToken', 'refreshBefore'];
  var CLIENT_OPTION_STATE = {};

  function checkWriteOptions(options) {
    function fail(name, what) {
      throw new TypeError(name + ' must be ' + what + '; got ' + JSON.stringify(options[name]));
    }
    if (options.retryWrites != null && !_.isBoolean(options.retryWrites)) {
      fail('retryWrites', 'true or false');
    }
    if (options.giveUpAfter != null && !positive(options.giveUpAfter)) {
      fail('giveUpAfter', 'a positive number of milliseconds');
    }
    if (options.onConflict != null && options.onConflict !== 'keep' &&
        options.onConflict !== 'server') {
      fail('onConflict', "'keep' or 'server'");
    }
    if (options.versionAttribute != null &&
        !(_.isString(options.versionAttribute) && options.versionAttribute)) {
      fail('versionAttribute', 'a non-empty string');
    }
    if (options.persistQueue != null && !_.isBoolean(options.persistQueue) &&
        !(_.isString(options.persistQueue) && options.persistQueue)) {
      fail('persistQueue', 'true, false or a localStorage key');
    }
    if (options.refreshToken != null && !_.isFunction(options.refreshToken)) {
      fail('refreshToken', 'a function returning a token (or a promise of one)');
    }
    if (options.refreshBefore != null && !positive(options.refreshBefore)) {
      fail('refreshBefore', 'a positive number of milliseconds');
    }
  }

  function credentials(value) {
    if (_.isString(value) && value) return {token: value};
    if (_.isObject(value) && !_.isArray(value) && !_.isFunction(value)) return value;
    throw new TypeError('Backbone.io.refresh() takes a token (a non-empty string) or an auth ' +
      'object; got ' + JSON.stringify(value));
  }

  // The exp of a JWT (seconds), read without verifying: only to know when to refresh.
  function tokenExpiry(auth) {
    var token = auth && auth.token;
    if (!_.isString(token) || token.split('.').length !== 3 || typeof atob !== 'function') {
      return null;
    }
    try {
      var part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      while (part.length % 4) part += '=';
      var claims = JSON.parse(atob(part));
      return typeof claims.exp === 'number' && isFinite(claims.exp) ? claims.exp : null;
    } catch (exc) {
      return null;
    }
  }

  function refreshAnswer(args) {
    var first = args[0], second = args[1];
    if (first == null) return {ok: true, answer: _.isObject(second) ? second : {}};
    return {ok: false, error: (_.isObject(first) && first.error) || first};
  }

  function refreshCredentials(value) {
    var auth = credentials(value);
    var done = deferred();
    state.ioOptions.auth = auth;
    var sockets = [];
    if (state.root) sockets.push(state.root);
    _.each(state.extraRoots, function (extra) { sockets.push(extra); });
    var asked = [];
    _.each(state.links, function (link) {
      if (!link.socket) return;
      sockets.push(link.socket);
      if (link.socket.connected) asked.push(link);
    });
    // Sockets that are not connected now present the new credentials when they (re)connect.
    _.each(sockets, function (socket) { socket.auth = auth; });
    var left = asked.length, failed = null, earliest = null, settled = false;
    var timer = setTimeout(function () {
      finish(error('Timeout', 'No answer to refresh within ' + state.syncTimeout + ' ms', 504));
    }, state.syncTimeout);
    function finish(err) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        announce('error', err, {backend: null, channel: null, refresh: true});
        guarded(done.reject, null, [err]);
        return;
      }
      state.expiresAt = earliest != null ? earliest : tokenExpiry(auth);
      var info = {expiresAt: state.expiresAt};
      announce('refresh', info);
      scheduleRefresh();
      guarded(done.resolve, null, [info]);
    }
    _.each(asked, function (link) {
      link.socket.emit('refresh', auth, function () {
        var outcome = refreshAnswer(arguments);
        if (!outcome.ok) failed = failed || outcome.error;
        else if (typeof outcome.answer.expires_at === 'number') {
          earliest = earliest == null ? outcome.answer.expires_at
            : Math.min(earliest, outcome.answer.expires_at);
        }
        left -= 1;
        if (!left) finish(failed);
      });
    });
    if (!left) later(function () { finish(null); });
    return done.promise;
  }

  // With connect({refreshToken}): asks the page's function for a new token
  // before the current one expires, and hands it over with refresh().
  function scheduleRefresh(retryIn) {
    if (state.refreshTimer) clearTimeout(state.refreshTimer);
    state.refreshTimer = null;
    if (!state.refreshToken || !state.root) return;
    var exp = state.expiresAt != null ? state.expiresAt : tokenExpiry(state.ioOptions.auth);
    if (exp == null) return;
    var left = exp * 1000 - Date.now();
    if (left <= 0) return;  // too late: the server closes the socket; reconnect with a new token
    var before = Math.min(state.refreshBefore || DEFAULT_REFRESH_BEFORE, left / 2);
    var delay = retryIn != null ? Math.min(retryIn, left / 2) : left - before;
    state.refreshTimer = setTimeout(function () {
      state.refreshTimer = null;
      var again = function () { scheduleRefresh(5000); };
      try {
        var fresh = state.refreshToken();
        var sent = fresh && typeof fresh.then === 'function'
          ? fresh.then(refreshCredentials) : refreshCredentials(fresh);
        sent.then(null, again);
      } catch (exc) {
        // The page's function threw, or gave no token: try again shortly.
        announce('error', error('Unauthorized', 'refreshToken failed: ' + (exc && exc.message),
          401), {backend: null, channel: null, refresh: true});
        again();
      }
    }, Math.max(0, delay));
  }

  var originalSync = Backbone.sync;

  // What a resync passes to fetch() again: the query and flags of the last
  // fetch, without its callbacks.
  var FETCH_CALLBACKS = ['success', 'error', 'xhr', 'context', 'complete', 'beforeSend'];

  Backbone.sync = function (method, model, options) {
    var spec = routeOf(model);
    if (!spec) return originalSync.apply(this, arguments);
    if (method === 'read' && _.has(model, '_backboneio') && model._backboneio) {
      model._backboneio.lastRead = _.omit(options || {}, FETCH_CALLBACKS);
    }
    return backendSync(method, model, options || {}, spec);
  };

  // -- presence --------------------------------------------------------------
  //
  // Backbone.io.presence(backend, channel): a collection of the members of a
  // backend (no channel) or channel, kept current from `presence(kind, member,
  // {channel})` events. After every listen of its link (reconnects included)
  // the collection asks the server for the members again, announcing the
  // page's state if it set one, so a reconnect within the server's grace
  // period comes back as the same member. Events heard while such a request
  // is unanswered are dropped: the server's answer already includes them.

  var presences = {};  // link key -> the collection
  var presenceId = null;  // one per page: the same connection across reconnects

  function pagePresenceId() {
    if (!presenceId) presenceId = idempotencyKey();
    return presenceId;
  }

  function presenceAttach(members) {
    var link = members._link, socket = link.socket;
    if (!socket || members._socket === socket) return;
    members._socket = socket;
    socket.on('presence', function (kind, member, meta) {
      if (socket !== link.socket || members._pending > 0 || !member) return;
      if ((meta && meta.channel !== undefined ? meta.channel : null) !== link.channel) return;
      if (kind === 'leave') members.remove(member.id);
      else members.add(member, {merge: true});
    });
  }

  // Sends presence({state?, presenceId}); the answer replaces the members.
  function presenceRequest(members, options) {
    var link = members._link, socket = link.socket;
    presenceAttach(members);
    if (!socket || !socket.connected || !link.ready) {
      return Promise.resolve(null);  // the next listen sends it
    }
    members._pending += 1;
    var round = members._round;
    return new Promise(function (resolve, reject) {
      socket.emit('presence', _.extend({presenceId: pagePresenceId()}, options),
        function (err, answer) {
          // An answer from before a reconnect (socket.io never answers those,
          // but a stale one must not count): the new listen asked again.
          if (round !== members._round) return resolve(null);
          members._pending -= 1;
          if (socket !== link.socket || members._stopped) return resolve(null);
          if (err || !answer) {
            var why = (err && err.error) || err ||
              error('BadRequest', 'The server gave no answer to presence', 400);
            announce('error', why, link.info());
            return reject(why);
          }
          members.me = answer.self;
          if (members._pending === 0) members.set(answer.members);
          resolve(answer);
        });
    });
  }

  function presenceRefresh(members) {
    var options = members._state !== undefined && members._state !== null
      ? {state: members._state} : {};
    return presenceRequest(members, options).catch(noop);
  }

  var PresenceMembers = Backbone.Collection.extend({
    // A member: {id, state, connections}. `id` is what the server keys it on
    // (the authenticated identity, else the page); `state` is what it said.
    model: Backbone.Model.extend({idAttribute: 'id'}),

    // Announces this page on the backend or channel with `state` (a small
    // object), or updates what it says; null leaves. Resolves with the
    // server's answer, and rejects with its error (PayloadTooLarge...).
    announce: function (state) {
      var members = this, before = this._state;
      this._state = state;
      if (state === null) this.me = null;
      return presenceRequest(this, {state: state}).catch(function (why) {
        // Refused (too large...): a reconnect must not send it again.
        if (members._state === state) members._state = before;
        throw why;
      });
    },

    leave: function () {
      return this.announce(null);
    },

    // Stops keeping the members current (and leaves, if announced).
    stop: function () {
      var link = this._link;
      if (this._state) this.announce(null).catch(noop);
      this._stopped = true;
      if (presences[link.key] === this) delete presences[link.key];
      link.release();
    }
  });

  function presenceFor(backend, channel, options) {
    var spec = parseSpec(channel === undefined || channel === null ? backend : {
      name: backend, channel: channel
    });
    var link = linkFor(spec);
    var members = presences[link.key];
    if (!members) {
      members = presences[link.key] = new PresenceMembers();
      members._link = link;
      members._pending = 0;
      members._round = 0;
      members._state = undefined;
      members.me = null;
      presenceRefresh(members);
    }
    if (options && options.state !== undefined) members.announce(options.state).catch(noop);
    return members;
  }

  function presenceListened(name, channel) {
    var link = state.links[keyOf({name: name, channel: channel === undefined ? null : channel})];
    var members = link && presences[link.key];
    if (!members) return;
    // Requests sent before the reconnect are never answered: stop waiting for them.
    members._round += 1;
    members._pending = 0;
    presenceRefresh(members);
  }

  // -- live queries ----------------------------------------------------------
  //
  // collection.subscribe(query): the collection is the query's window, kept
  // current by the server (docs/live-queries.md). The subscription belongs
  // to the collection's link: after every listen of its socket (reconnects
  // included) it subscribes again with the same id and sets the fresh window.
  //
  // The client keeps the server's window as a list of ids (`ids`), apart from
  // the collection, and places each model next to its neighbours in that
  // list. So the page's own unsaved models, which the server does not know
  // yet, may sit in the collection without throwing the server's indexes off.
  //
  // While a create made through the collection is unanswered, an `enter` of
  // an id the collection does not hold may be that very create: it waits
  // (with everything after it) until the create's answer has given the model
  // its id, so the model enters once, as the page's own instance.

  var liveCount = 0;

  function liveOf(collection) {
    var live = collection && collection._backboneioLive;
    return live && !live.stopped ? live : null;
  }

  function idOf(collection, attrs) {
    return collection.modelId(attrs, collection.model && collection.model.prototype.idAttribute);
  }

  function liveInfo(live) {
    return _.extend(live.link.info(), {subscription: live.id});
  }

  function liveAttach(link) {
    var socket = link.socket;
    if (!socket || link.liveSocket === socket) return;
    link.liveSocket = socket;
    socket.on('query', function (id, kind, model, meta) {
      var live = socket === link.socket && _.has(link.live, id) ? link.live[id] : null;
      if (!live || live.stopped || live.socket !== socket) return;
      if (kind !== 'enter' && kind !== 'change' && kind !== 'leave') return;
      if (!_.isObject(model) || _.isArray(model)) return;
      var event = {kind: kind, model: model, meta: _.isObject(meta) ? meta : {}};
      if (!live.answered) {
        live.early.push(event);  // before the answer of this subscribe: sorted out by it
        return;
      }
      if (liveSeen(live, event.meta)) return;
      live.actions.push(event);
      liveProcess(live);
    });
  }

  // Whether the window of the answer already includes the write of `meta`.
  function liveSeen(live, meta) {
    if (!isPosition(meta)) return false;
    var floor = live.floor[streamOf(meta)];
    return Boolean(floor && floor.epoch === meta.epoch && meta.seq <= floor.seq);
  }

  function liveSend(live) {
    var link = live.link, socket = link.socket;
    if (live.stopped || !socket || !socket.connected || !link.ready) return;  // the next listen sends it
    liveAttach(link);
    live.round += 1;
    live.socket = socket;
    live.answered = false;
    live.early = [];
    var round = live.round;
    socket.emit('subscribe', {id: live.id, query: live.query}, function (err, answer) {
      if (live.stopped || round !== live.round || socket !== link.socket) return;
      if (err || !_.isObject(answer) || !_.isArray(answer.models)) {
        liveEnd(live, (err && err.error) || err ||
          error('BadRequest', 'The server gave no answer to subscribe on ' + link.describe(), 400));
        return;
      }
      live.answered = true;
      live.floor = {};
      _.each(positionsIn(answer.positions), function (position) {
        live.floor[streamOf(position)] = position;
      });
      // The backend's stream (no channel), as the answer also states it on its own.
      if (_.isString(answer.epoch) && typeof answer.seq === 'number' && !live.floor['']) {
        live.floor[''] = {channel: null, epoch: answer.epoch, seq: answer.seq};
      }
      // A resubscription's window replaces whatever was still waiting.
      live.actions = [{kind: 'window', models: answer.models}];
      _.each(live.early, function (event) {
        if (!liveSeen(live, event.meta)) live.actions.push(event);
      });
      live.early = [];
      liveProcess(live);
    });
  }

  // The window of an answer is in the collection: `sync`, and the promise.
  function liveAnswered(live, models) {
    var collection = live.collection, options = live.options, first = !live.settled;
    live.settled = true;
    if (live.timer) clearTimeout(live.timer);
    live.timer = null;
    if (first && options.success) guarded(options.success, null, [collection, models, options]);
    guarded(collection.trigger, collection, ['sync', collection, models, options]);
    if (first) guarded(live.done.resolve, null, [collection]);
  }

  // Refused (or the link can never subscribe): the collection is no longer live.
  function liveEnd(live, why) {
    liveForget(live);
    var collection = live.collection, options = live.options;
    if (!live.settled) {
      live.settled = true;
      if (live.timer) clearTimeout(live.timer);
      live.timer = null;
      if (options.error) guarded(options.error, null, [collection, why, options]);
      guarded(collection.trigger, collection, ['error', collection, why, options]);
      guarded(live.done.reject, null, [why]);
    } else {
      guarded(collection.trigger, collection, ['error', collection, why, options]);
    }
    announce('error', why, liveInfo(live));
  }

  function liveForget(live) {
    live.stopped = true;
    var link = live.link;
    if (link.live[live.id] === live) delete link.live[live.id];
    if (live.collection._backboneioLive === live) live.collection._backboneioLive = null;
    link.release();
  }

  // After every listen of a link: its subscriptions go (again).
  function liveListened(link) {
    _.each(_.values(link.live), liveSend);
  }

  function liveLinkFailed(link, why) {
    _.each(_.values(link.live), function (live) { liveEnd(live, why); });
  }

  function liveDisconnected(link) {
    _.each(link.live, function (live) {
      live.answered = false;
      live.socket = null;
      live.early = [];
    });
  }

  // Applies what has arrived, in order, unless an unanswered create of the
  // collection makes the next step ambiguous.
  function liveProcess(live) {
    var collection = live.collection;
    while (!live.stopped && live.actions.length) {
      var action = live.actions[0];
      if (collection._backboneioCreates > 0 && (action.kind === 'window' ||
          (action.kind === 'enter' && !collection.get(idOf(collection, action.model))))) {
        return;
      }
      live.actions.shift();
      if (action.kind === 'window') {
        guarded(liveWindow, null, [live, action.models]);
        liveAnswered(live, action.models);
      } else {
        guarded(liveEvent, null, [live, action]);
      }
    }
  }

  // The answer's window: Backbone's set, so only differences fire add,
  // remove and change. The page's new models (no id yet) stay, after it.
  function liveWindow(live, models) {
    var collection = live.collection;
    live.ids = _.map(models, function (attrs) { return idOf(collection, attrs); });
    live.strays = {};
    var unsaved = collection.filter(function (model) { return model.isNew(); });
    collection.set(models.concat(unsaved), {sort: false});
  }

  // Where window model `id` goes in the collection: after the nearest
  // model before it in the window, else before the nearest after it.
  function livePlace(live, id) {
    var collection = live.collection, ids = live.ids, i = _.indexOf(ids, id), j, other;
    for (j = i - 1; j >= 0; j--) {
      other = collection.get(ids[j]);
      if (other) return collection.indexOf(other) + 1;
    }
    for (j = i + 1; j < ids.length; j++) {
      other = collection.get(ids[j]);
      if (other) return collection.indexOf(other);
    }
    return 0;
  }

  // Moves a model of the collection to its place, silently; true if it moved.
  function liveMove(live, model, id) {
    var models = live.collection.models, from = _.indexOf(models, model);
    models.splice(from, 1);
    var at = livePlace(live, id);
    models.splice(at, 0, model);
    return at !== from;
  }

  function liveEvent(live, event) {
    var collection = live.collection, attrs = event.model;
    var id = idOf(collection, attrs);
    if (id == null) return;
    live.ids = _.without(live.ids, id);
    if (event.kind === 'leave') {
      var gone = collection.get(id);
      if (gone) collection.remove(gone);
      return;
    }
    var index = event.meta.index;
    if (typeof index !== 'number' || index < 0 || index > live.ids.length) index = live.ids.length;
    live.ids.splice(index, 0, id);
    var existing = collection.get(id);
    if (!existing) {
      var stray = _.has(live.strays, id) ? live.strays[id] : null;
      if (stray) {
        delete live.strays[id];
        replaceAttributes(stray, attrs);
      }
      collection.add(stray || attrs, {at: livePlace(live, id)});
      return;
    }
    // Moved first, so a listener of 'change' sees the new order; 'sort' says it moved.
    var moved = liveMove(live, existing, id);
    replaceAttributes(existing, attrs);
    if (moved) collection.trigger('sort', collection, {live: true});
  }

  // A create made through the collection was answered (or failed).
  function liveCreateSettled(collection) {
    collection._backboneioCreates -= 1;
    var live = liveOf(collection);
    if (!live) return;
    liveProcess(live);
    if (collection._backboneioCreates > 0 || !live.ids || live.actions.length) return;
    // A saved model the window does not hold is not the server's: it leaves.
    var inWindow = _.object(_.map(live.ids, function (id) { return [id, true]; }));
    var strays = collection.filter(function (model) {
      return !model.isNew() && !inWindow[model.id];
    });
    if (strays.length) collection.remove(strays);
    // Its enter may still come (a change log shared between processes tells
    // the writer after its answer): then the page's instance comes back.
    _.each(strays, function (model) { live.strays[model.id] = model; });
    // A comparator may have sorted an added model; the window's order wins.
    var order = _.map(live.ids, function (id) { return collection.get(id); });
    order = _.compact(order).concat(collection.filter(function (model) { return model.isNew(); }));
    if (order.length === collection.length &&
        _.some(order, function (model, i) { return collection.models[i] !== model; })) {
      collection.models.splice.apply(collection.models, [0, order.length].concat(order));
      collection.trigger('sort', collection, {live: true});
    }
  }

  function subscribeCollection(query, options) {
    var collection = this;
    var sub = route(collection);
    if (!sub || !sub.spec) throw new Error('subscribe() needs a backend on this collection');
    if (query == null) query = {};
    if (!_.isObject(query) || _.isArray(query) || _.isFunction(query)) {
      throw new TypeError('subscribe() takes a query object; got ' + JSON.stringify(query));
    }
    options = _.extend({}, options);
    var previous = liveOf(collection);
    if (previous) stopLive(previous);
    var link = linkFor(sub.spec);
    var live = {
      id: 'q' + (liveCount += 1),
      query: JSON.parse(JSON.stringify(query)),
      options: options,
      collection: collection,
      link: link,
      socket: null,
      round: 0,
      answered: false,
      settled: false,
      stopped: false,
      early: [],
      actions: [],
      floor: {},
      ids: null,
      strays: {},  // id -> a model of the page's own create that left before its enter
      done: deferred(),
      timer: null
    };
    collection._backboneioLive = live;
    if (link.failure) {
      var why = link.failure;
      later(function () { if (!live.stopped) liveEnd(live, why); });
      return live.done.promise;
    }
    link.live[live.id] = live;
    var ms = positive(options.timeout) ? options.timeout : state.syncTimeout;
    live.timer = setTimeout(function () {
      live.timer = null;
      if (live.settled || live.stopped) return;
      // The subscription stays: the next listen (or a late answer) fills the window.
      live.settled = true;
      var late = error('Timeout', 'No answer to subscribe on ' + link.describe() + ' within ' +
        ms + ' ms', 504, {method: 'subscribe'});
      if (options.error) guarded(options.error, null, [collection, late, options]);
      guarded(collection.trigger, collection, ['error', collection, late, options]);
      guarded(live.done.reject, null, [late]);
    }, ms);
    liveSend(live);
    return live.done.promise;
  }

  // Stops a subscription; resolves once the server has answered (at once when offline).
  function stopLive(live) {
    var link = live.link, socket = link.socket, done = deferred();
    var wasSent = live.socket && live.socket === socket && socket.connected;
    if (live.timer) clearTimeout(live.timer);
    live.timer = null;
    liveForget(live);
    if (!wasSent) {
      later(function () { done.resolve(live.collection); });
      return done.promise;
    }
    socket.emit('unsubscribe', live.id, function () { done.resolve(live.collection); });
    return done.promise;
  }

  function unsubscribeCollection() {
    var live = liveOf(this);
    if (live) return stopLive(live);
    var done = deferred(), collection = this;
    later(function () { done.resolve(collection); });
    return done.promise;
  }

  Backbone.Collection.prototype.subscribe = subscribeCollection;
  Backbone.Collection.prototype.unsubscribe = unsubscribeCollection;

  // fetch({data: query, live: true}) is subscribe(query); a plain fetch()
  // of a live collection ends its subscription: the read's answer replaces
  // the window, which no longer follows the server.
  var collectionFetch = Backbone.Collection.prototype.fetch;
  Backbone.Collection.prototype.fetch = function (options) {
    if (options && options.live) return this.subscribe(options.data, _.omit(options, 'live', 'data'));
    var live = liveOf(this);
    if (live) stopLive(live);
    return collectionFetch.apply(this, arguments);
  };

  // -- the public object -----------------------------------------------------

  Backbone.io = Backbone.IO = _.extend({
    VERSION: '0.1.0',
    originalSync: originalSync,

    connect: function (url, options) {
      if (_.isObject(url)) {
        options = url;
        url = undefined;
      }
      options = _.extend({}, options);
      if (options.syncTimeout != null && !positive(options.syncTimeout)) {
        throw new TypeError('syncTimeout must be a positive number of milliseconds; got ' +
          JSON.stringify(options.syncTimeout));
      }
      if (options.refetch != null && !_.isBoolean(options.refetch)) {
        throw new TypeError('refetch must be true or false; got ' + JSON.stringify(options.refetch));
      }
      checkWriteOptions(options);
      if (state.root) return state.root;
      if (options.refetch != null) state.refetch = options.refetch;
      _.each(CLIENT_OPTIONS, function (name) {
        if (options[name] != null) state[CLIENT_OPTION_STATE[name] || name] = options[name];
      });
      if (options.persistQueue != null) {
        state.persistKey = options.persistQueue === true ? DEFAULT_PERSIST_KEY
          : options.persistQueue || null;
      }
      delete options.refetch;
      delete options.persistQueue;
      _.each(CLIENT_OPTIONS, function (name) { delete options[name]; });
      if (options.syncTimeout != null) {
        state.syncTimeout = options.syncTimeout;
        // Syncs made before connect() were timed with the previous value.
        _.each(state.links, function (link) {
          _.each(link.queue, function (entry) {
            if (entry.retry) entry.timeout = entry.ownTimeout ? entry.timeout : state.syncTimeout;
            else if (!entry.ownTimeout) entry.arm(state.syncTimeout);
          });
        });
      }
      delete options.syncTimeout;
      state.url = url;
      state.ioOptions = options;
      state.root = io(url, options);
      _.each(state.links, function (link) { link.open(); });
      restorePersisted();
      scheduleRefresh();
      return state.root;
    },

    // Hands the server new credentials on every open socket, without
    // reconnecting; a string is sent as {token}. Reconnections use them too.
    // The promise resolves with {expiresAt} once every connected backend
    // accepted them, and rejects with the first refusal (Unauthorized...).
    refresh: refreshCredentials,

    // A fresh idempotency key, as every write gets one.
    idempotencyKey: idempotencyKey,

    // The writes not yet answered, in the order they were made.
    pendingWrites: function () {
      return _.map(unanswered(), function (entry) {
        return {
          backend: entry.link.name, channel: entry.link.channel, method: entry.request.method,
          id: _.isObject(entry.request.model) && entry.origin instanceof Backbone.Model
            ? entry.request.model[entry.origin.idAttribute] : undefined,
          idempotencyKey: entry.key, attempts: entry.attempts, sent: entry.sent
        };
      });
    },

    // Closes every socket; pending syncs fail. connect() may be called again.
    disconnect: function () {
      var why = error('Unavailable', 'Backbone.io.disconnect() was called', 503);
      _.each(state.links, function (link) {
        guarded(link.close, link, [why]);
        link.failure = null;
        link.extra = null;
      });
      _.each(state.extraRoots, function (extra) { extra.disconnect(); });
      if (state.root) state.root.disconnect();
      if (state.refreshTimer) clearTimeout(state.refreshTimer);
      state.refreshTimer = null;
      state.expiresAt = null;
      state.root = null;
      state.sharedNames = {};
      state.extraRoots = [];
    },

    // Stops delivering a backend's notifications to `obj` (bindBackend() resumes).
    unsubscribe: unsubscribe,

    socketOf: function (obj) {
      var spec = routeOf(obj);
      return spec ? linkFor(spec).socket : null;
    },

    // What the client holds, for debugging: one entry per open link.
    links: function () {
      return _.map(_.values(state.links), function (link) {
        return {
          backend: link.name, channel: link.channel, subscribers: link.subscribers.length,
          pending: link.queue.length + link.inflight.length, ready: link.ready,
          live: _.size(link.live),
          positions: _.map(_.values(link.positions), _.clone)
        };
      });
    }
  }, Backbone.Events);

  // Presence (see its section): who else is on a backend or channel.
  Backbone.io.presence = presenceFor;
  Backbone.io.on('listen', presenceListened);

  return Backbone.io;
});
