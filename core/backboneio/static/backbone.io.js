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
    'scriptAttrs', 'scriptCharset', 'traditional'
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
    released: {}
  };
  var delivering = null;  // {event, method} while notify() triggers models

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
        } else {
          link.event = link.event || 'backend';
          link.failure = null;
          link.ready = true;
          link.flush();
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
      if (obj instanceof Backbone.Model && obj.isNew()) return;
      guarded(obj.fetch, obj, [_.extend({}, sub.lastRead)]);
    });
  };

  Link.prototype.disconnected = function (reason) {
    this.ready = false;
    // Unapplied: the resume asks for them again.
    this.early = null;
    this.failAll(this.inflight.slice(), error('Unavailable',
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
    this.queue.push(entry);
    if (this.ready) this.flush();
  };

  Link.prototype.flush = function () {
    while (this.ready && this.socket && this.socket.connected && this.queue.length) {
      this.send(this.queue.shift());
    }
  };

  Link.prototype.send = function (entry) {
    var link = this;
    entry.sent = true;
    this.inflight.push(entry);
    this.socket.emit('sync', entry.request, function (err, result, extra) {
      link.inflight = _.without(link.inflight, entry);
      var failed = err ? (err.error || err) : null;
      var method = entry.request.method;
      // A read answers with the heads taken before it: changes up to them are in the result.
      if (!failed && extra && link.socket) {
        _.each(positionsIn(extra.positions), function (position) { link.advance(position); });
      }
      entry.settle(failed, result);
      // The server tells every other client; the other objects of this page
      // share this socket, so they hear it from here.
      if (!failed && WRITES[method]) echo(link, method, result, entry.origin);
    });
  };

  Link.prototype.forget = function (entry) {
    this.queue = _.without(this.queue, entry);
    this.inflight = _.without(this.inflight, entry);
  };

  // Everything is dequeued before any callback runs, so a callback that
  // syncs again or throws cannot disturb the rest.
  Link.prototype.failAll = function (entries, why) {
    var link = this;
    _.each(entries, function (entry) { link.forget(entry); });
    _.each(entries, function (entry) { guarded(entry.settle, entry, [why]); });
  };

  Link.prototype.idle = function () {
    return !this.subscribers.length && !this.queue.length && !this.inflight.length;
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

  function backendSync(method, model, options, spec) {
    var link = linkFor(spec);
    var done = deferred();
    var success = options.success, failure = options.error;
    // jQuery reads timeout: 0 as "no limit"; here every sync has one.
    var own = positive(options.timeout);
    var entry = {
      link: link,
      origin: model,
      request: {method: method, model: wireModel(method, model, options), options: wireOptions(options)},
      sent: false,
      settled: false,
      timer: null,
      ownTimeout: own,
      started: Date.now(),
      timeout: own ? options.timeout : state.syncTimeout,
      arm: function (ms) {
        if (entry.timer) clearTimeout(entry.timer);
        entry.timeout = ms;
        entry.timer = setTimeout(function () {
          link.forget(entry);
          entry.settle(timeoutError(entry));
        }, Math.max(0, ms - (Date.now() - entry.started)));
      },
      settle: function (err, result) {
        if (entry.settled) return;
        entry.settled = true;
        if (entry.timer) clearTimeout(entry.timer);
        if (err) {
          if (failure) guarded(failure, null, [err]);
          guarded(done.reject, null, [err]);
        } else {
          if (success) guarded(success, null, [result]);
          guarded(done.resolve, null, [result]);
        }
        link.release();
      }
    };
    entry.arm(entry.timeout);
    link.submit(entry);
    // Backbone's own sync triggers it once the request is under way.
    guarded(model.trigger, model, ['request', model, done.promise, options]);
    return done.promise;
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
      if (state.root) return state.root;
      if (options.refetch != null) state.refetch = options.refetch;
      delete options.refetch;
      if (options.syncTimeout != null) {
        state.syncTimeout = options.syncTimeout;
        // Syncs made before connect() were timed with the previous value.
        _.each(state.links, function (link) {
          _.each(link.queue, function (entry) {
            if (!entry.ownTimeout) entry.arm(state.syncTimeout);
          });
        });
      }
      delete options.syncTimeout;
      state.url = url;
      state.ioOptions = options;
      state.root = io(url, options);
      _.each(state.links, function (link) { link.open(); });
      return state.root;
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
          positions: _.map(_.values(link.positions), _.clone)
        };
      });
    }
  }, Backbone.Events);

  return Backbone.io;
});
