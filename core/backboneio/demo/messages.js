// The Messages demo: Backbone.IO's original example, for Backbone 1.6.
(function () {
  'use strict';

  // libraries.js has told the reader what did not load.
  if (!window.Backbone || !window.jQuery || !Backbone.io) return;

  var room = new URLSearchParams(window.location.search).get('room');
  Backbone.io.connect();

  var Message = Backbone.Model.extend({
    defaults: {text: ''},
    validate: function (attrs) {
      if (!String(attrs.text || '').trim()) return 'A message needs some text';
    }
  });

  var Messages = Backbone.Collection.extend({
    model: Message,
    backend: room ? {name: 'messages', channel: room} : 'messages',
    comparator: 'sentAt'
  });

  function clock(iso) {
    var when = new Date(iso);
    return isNaN(when) ? '' : when.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
  }

  var MessageView = Backbone.View.extend({
    tagName: 'li',
    className: 'message',

    initialize: function () {
      // model.pending: a write of it is not answered yet (offline, or on its way).
      this.listenTo(this.model, 'pending change', this.render);
      this.listenTo(this.model, 'error', this.failed);
    },

    render: function () {
      // text(), never html(): messages come from other people
      this.$el.empty().append(
        $('<span class="text">').text(this.model.get('text')),
        this.model.pending
          ? $('<span class="pending-mark">').text('sending…')
          : $('<time>').attr('datetime', this.model.get('sentAt'))
            .text(clock(this.model.get('sentAt')))
      );
      this.$el.toggleClass('pending', this.model.pending);
      return this;
    },

    failed: function () {
      this.$el.addClass('failed');
      this.$('.pending-mark, time').remove();
      this.$el.append($('<span class="failed-mark">').text('not sent'));
    }
  });

  var MessagesView = Backbone.View.extend({
    el: '#messages-app',
    events: {'submit #message-form': 'send'},

    initialize: function () {
      this.$list = this.$('#message-list');
      this.$input = this.$('#message-input');
      this.listenTo(this.collection, 'add remove reset sort', this.render);
      this.listenTo(this.collection, 'error', this.showError);
      if (room) this.$('.room').prop('hidden', false).text('Room: ' + room);
      this.render();
    },

    render: function () {
      // The previous views stop listening to their models before they go.
      _.invoke(this.views || [], 'remove');
      this.views = this.collection.map(function (message) {
        return new MessageView({model: message}).render();
      });
      this.$list.empty().append(_.pluck(this.views, 'el'));
      this.$('.empty').toggle(this.collection.isEmpty());
      var list = this.$list.get(0);
      list.scrollTop = list.scrollHeight;
      return this;
    },

    send: function (event) {
      event.preventDefault();
      var text = this.$input.val().trim();
      if (!text) return;
      // Shown at once, marked "sending…" until the server has it: offline,
      // the client keeps it in its queue and sends it when the network is back.
      this.collection.create({text: text, sentAt: new Date().toISOString()});
      this.$input.val('').focus();
    },

    showError: function (model, error) {
      this.$('.error').prop('hidden', false)
        .text('Could not send: ' + ((error && error.message) || 'unknown error'));
    }
  });

  // Who else is here: the members of the page's backend or room, kept
  // current by the server (docs/presence.md), and who is typing.
  var OnlineView = Backbone.View.extend({
    el: '#online',

    initialize: function (options) {
      this.me = options.name;
      this.typing = false;
      this.listenTo(this.collection, 'add remove change reset update', this.render);
      this.collection.announce({name: this.me, typing: false});
      this.render();
    },

    render: function () {
      var members = this.collection;
      this.$el.empty().append($('<span class="label">').text('Online:'));
      members.each(function (member) {
        var state = member.get('state') || {};
        var mine = member.id === members.me;
        var name = String(state.name || 'someone') + (mine ? ' (you)' : '');
        this.$el.append(
          $('<span class="member">').toggleClass('me', mine).text(name)
            .append(state.typing && !mine ? $('<em class="typing">').text(' typing…') : null)
        );
      }, this);
      return this;
    },

    // Said when it changes, and taken back after two quiet seconds.
    setTyping: function (typing) {
      clearTimeout(this.quiet);
      if (typing) this.quiet = setTimeout(_.bind(this.setTyping, this, false), 2000);
      if (typing === this.typing) return;
      this.typing = typing;
      this.collection.announce({name: this.me, typing: typing}).catch(function () {});
    }
  });

  var name = 'Guest ' + (100 + Math.floor(Math.random() * 900));
  var online = new OnlineView({
    collection: Backbone.io.presence('messages', room || null), name: name
  });
  $('#message-input').on('input', function () { online.setTyping(this.value !== ''); });
  $('#message-form').on('submit', function () { online.setTyping(false); });

  var messages = new Messages();
  messages.bindBackend();
  window.demo = {
    messages: messages, view: new MessagesView({collection: messages}), online: online
  };
  messages.fetch();
})();
