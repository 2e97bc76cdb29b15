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

  var DEFAULT_SYNC_TIMEOUT = 30000;

  // What Backbone and jQuery.ajax put into a sync's options for their own use:
  // callbacks, the collection, flags. The server gets the rest, as JSON.
  var LOCAL_OPTIONS = _.object(_.map([
    'success', 'error', 'collection', 'attrs', 'xhr', 'context', 'parse', 'wait', 'patch',
    'validate', 'reset', 'merge', 'add', 'remove', 'silent', 'unset', 'at', 'sort', 'url',
    'emulateHTTP', 'emulateJSON', 'timeout', 'beforeSend', 'type', 'contentType',
    'processData', 'dataType'
  ], function (key) { return [key, true]; }));

  var state = {
    root: null,          // the "/" socket returned by connect()
    url: undefined,
    ioOptions: {},
    syncTimeout: DEFAULT_SYNC_TIMEOUT,
    links: {},           // "name\u0000channel" -> Link
    sharedNames: {},     // backend names already on the root socket's Manager
    extraRoots: []       // Managers of second channels of one backend (see managerFor)
  };

  function noop() {}

  function error(name, message, status, extra) {
    return _.extend({name: name, message: message, status: status}, extra);
  }

  // A user callback that throws must not break socket.io's packet handling,
  // yet the exception should still reach the console / process.
  function guarded(fn, context, args) {
    try {
      return fn.apply(context, args);
    } catch (exc) {
      setTimeout(function () { throw exc; }, 0);
    }
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

  // -- Link: one socket listening on one backend (and channel) ---------------

  function Link(name, channel) {
    this.name = name;
    this.channel = channel;
    this.subscribers = [];
    this.queue = [];      // syncs waiting until the socket listens
    this.inflight = [];   // syncs sent, waiting for their ack
    this.socket = null;
    this.ready = false;
    this.event = null;
    this.failure = null;  // an error every sync gets at once (refused, not allowed to listen)
  }

  Link.prototype.describe = function () {
    return "backend '" + this.name + "'" + (this.channel === null ? '' : " (channel '" +
      this.channel + "')");
  };

  Link.prototype.open = function () {
    var link = this;
    var socket = this.socket = managerFor(this.name).socket('/' + this.name, {auth: state.ioOptions.auth});
    socket.on('connect', function () { if (socket === link.socket) link.listen(); });
    socket.on('disconnect', function (reason) {
      if (socket === link.socket) link.disconnected(reason);
    });
    socket.on('connect_error', function (err) {
      if (socket === link.socket) link.connectFailed(err);
    });
    socket.on('synced', function (method, model) {
      if (socket === link.socket) link.notify(method, model);
    });
    socket.on('error', function (payload) {
      Backbone.io.trigger('error', (payload && payload.error) || payload, link.info());
    });
    if (socket.connected) this.listen();
  };

  Link.prototype.close = function (why) {
    var socket = this.socket;
    this.socket = null;
    this.ready = false;
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
    socket.emit('listen', this.channel, function (answer) {
      if (socket !== link.socket || !socket.connected) return;
      if (!answer || answer.error) {
        var failure = (answer && answer.error) ||
          error('BadRequest', 'The server gave no answer to listen on ' + link.describe(), 400);
        Backbone.io.trigger('error', failure, link.info());
        // Syncs on a channel we could not join would reach the wrong audience.
        if (link.channel !== null) {
          link.failure = failure;
          link.failAll(link.queue.slice(), failure);
          return;
        }
        link.event = link.event || 'backend';
      } else {
        link.event = answer.event || 'backend';
      }
      link.failure = null;
      link.ready = true;
      Backbone.io.trigger('listen', link.name, link.channel, answer);
      link.flush();
    });
  };

  Link.prototype.disconnected = function (reason) {
    this.ready = false;
    this.failAll(this.inflight.slice(), error('Unavailable',
      'The connection to ' + this.describe() + ' was lost (' + reason + ') before the server ' +
      'answered; the change may or may not have been applied', 503));
    if (!this.socket.active) {
      // The server closed this socket on purpose; socket.io will not reconnect it.
      this.failure = error('Unavailable', 'The server disconnected ' + this.describe(), 503);
      this.failAll(this.queue.slice(), this.failure);
    }
    Backbone.io.trigger('disconnect', this.name, this.channel, reason);
  };

  Link.prototype.connectFailed = function (err) {
    if (this.socket.active) return;  // unreachable for now: socket.io retries, syncs wait
    var data = err && err.data;
    this.failure = error('ConnectionRefused', (err && err.message) || 'Connection refused',
      (data && data.status) || 403, data ? {data: data} : {});
    Backbone.io.trigger('error', this.failure, this.info());
    this.failAll(this.queue.slice(), this.failure);
  };

  Link.prototype.notify = function (method, model) {
    if (!this.ready) return;
    var event = this.event;
    _.each(this.subscribers.slice(), function (target) {
      var sub = target._backboneio;
      if (sub && sub.bound) guarded(applyChange, null, [target, method, model]);
      guarded(target.trigger, target, [event, method, model]);
      guarded(target.trigger, target, [event + ':' + method, model]);
    });
  };

  Link.prototype.submit = function (entry) {
    if (this.failure) return entry.settle(this.failure);
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
    this.socket.emit('sync', entry.request, function (err, result) {
      link.inflight = _.without(link.inflight, entry);
      entry.settle(err ? (err.error || err) : null, result);
    });
  };

  Link.prototype.forget = function (entry) {
    this.queue = _.without(this.queue, entry);
    this.inflight = _.without(this.inflight, entry);
  };

  Link.prototype.failAll = function (entries, why) {
    var link = this;
    _.each(entries, function (entry) {
      link.forget(entry);
      entry.settle(why);
    });
  };

  function linkFor(spec) {
    var key = spec.name + '\u0000' + (spec.channel === null ? '' : spec.channel);
    var link = state.links[key];
    if (!link) {
      link = state.links[key] = new Link(spec.name, spec.channel);
      if (state.root) link.open();
    }
    return link;
  }

  // Backends share the connection of the "/" socket. A socket listens on one
  // channel of its namespace, so a second channel of the same backend needs a
  // connection of its own.
  function managerFor(name) {
    if (!state.sharedNames[name]) {
      state.sharedNames[name] = true;
      return state.root.io;
    }
    var extra = io(state.url, _.extend({}, state.ioOptions, {forceNew: true}));
    state.extraRoots.push(extra);
    return extra.io;
  }

  // -- subscriptions ---------------------------------------------------------

  function subscribe(obj) {
    if (_.has(obj, '_backboneio')) return obj._backboneio;
    var spec = _.result(obj, 'backend');
    if (!spec) return null;
    var link = linkFor(parseSpec(spec));
    var sub = obj._backboneio = {link: link, bound: false};
    link.subscribers.push(obj);
    if (obj instanceof Backbone.Model) {
      obj.once('destroy', function () { unsubscribe(obj); });
    }
    return sub;
  }

  function unsubscribe(obj) {
    var sub = obj._backboneio;
    if (!sub) return;
    sub.link.subscribers = _.without(sub.link.subscribers, obj);
    delete obj._backboneio;
  }

  // The backend a sync of `obj` goes to: its own, else its collection's.
  function backendOf(obj) {
    if (!obj) return null;
    var own = subscribe(obj);
    if (own) return own;
    return obj.collection ? backendOf(obj.collection) : null;
  }

  function wrapConstructor(Original, isModel) {
    var Wrapped = function (first, options) {
      // A collection passes its constructor options on to the models it
      // creates; its backend is not theirs.
      var inherited = isModel && options && options.collection &&
        options.collection.backend === options.backend;
      if (options && options.backend && !inherited) this.backend = options.backend;
      var result = Original.apply(this, arguments);
      subscribe(this);
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

  // -- bindBackend -----------------------------------------------------------

  function replaceAttributes(model, attrs) {
    var gone = _.difference(_.keys(model.attributes), _.keys(attrs));
    model.set(attrs);
    if (gone.length) model.set(_.object(gone, []), {unset: true});
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

  function bindBackend() {
    var sub = subscribe(this);
    if (!sub) throw new Error('bindBackend() needs a backend on this ' +
      (this instanceof Backbone.Model ? 'model' : 'collection'));
    sub.bound = true;
    return this;
  }

  function unbindBackend() {
    if (this._backboneio) this._backboneio.bound = false;
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

  function backendSync(method, model, options, sub) {
    var link = sub.link;
    var done = deferred();
    var success = options.success, failure = options.error;
    var timeout = options.timeout != null ? options.timeout : state.syncTimeout;
    var entry = {
      request: {method: method, model: wireModel(method, model, options), options: wireOptions(options)},
      sent: false,
      settled: false,
      timer: null,
      settle: function (err, result) {
        if (entry.settled) return;
        entry.settled = true;
        if (entry.timer) clearTimeout(entry.timer);
        if (err) {
          if (failure) guarded(failure, null, [err]);
          done.reject(err);
        } else {
          if (success) guarded(success, null, [result]);
          done.resolve(result);
        }
      }
    };
    if (timeout > 0) {
      entry.timer = setTimeout(function () {
        link.forget(entry);
        entry.settle(error('Timeout', entry.sent
          ? 'No answer from ' + link.describe() + ' within ' + timeout + ' ms'
          : 'Could not reach ' + link.describe() + ' within ' + timeout + ' ms' +
            (state.root ? ' (the server is unreachable)' : ' (Backbone.io.connect() was not called)'),
          504, {method: method}));
      }, timeout);
    }
    model.trigger('request', model, done.promise, options);
    link.submit(entry);
    return done.promise;
  }

  var originalSync = Backbone.sync;

  Backbone.sync = function (method, model, options) {
    var sub = backendOf(model);
    if (!sub) return originalSync.apply(this, arguments);
    return backendSync(method, model, options || {}, sub);
  };

  // -- the public object -----------------------------------------------------

  Backbone.io = Backbone.IO = _.extend({
    VERSION: '0.1.0',
    originalSync: originalSync,

    connect: function (url, options) {
      if (state.root) return state.root;
      if (_.isObject(url)) {
        options = url;
        url = undefined;
      }
      options = _.extend({}, options);
      if (options.syncTimeout != null) state.syncTimeout = options.syncTimeout;
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
      _.each(state.links, function (link) { link.close(why); link.failure = null; });
      _.each(state.extraRoots, function (extra) { extra.disconnect(); });
      if (state.root) state.root.disconnect();
      state.root = null;
      state.sharedNames = {};
      state.extraRoots = [];
      state.syncTimeout = DEFAULT_SYNC_TIMEOUT;
    },

    // Stops delivering a backend's notifications to `obj`.
    unsubscribe: unsubscribe,

    socketOf: function (obj) {
      var sub = backendOf(obj);
      return sub ? sub.link.socket : null;
    }
  }, Backbone.Events);

  return Backbone.io;
});
