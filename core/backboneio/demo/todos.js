// The Todos demo: add, tick (a patch) and delete, shared by every open window.
// "All" is the whole backend, fetched and kept bound; "Active" (#/active) is
// a live query, the todos not done in the order they were made: a todo ticked
// in another window leaves it, and one unticked comes back at its place.
(function () {
  'use strict';

  // libraries.js has told the reader what did not load.
  if (!window.Backbone || !window.jQuery || !Backbone.io) return;

  Backbone.io.connect();

  var Todo = Backbone.Model.extend({
    defaults: {title: '', done: false},
    toggle: function () {
      return this.save({done: !this.get('done')}, {patch: true});
    }
  });

  var Todos = Backbone.Collection.extend({
    model: Todo,
    backend: 'todos',
    comparator: 'createdAt'
  });

  var TodoView = Backbone.View.extend({
    tagName: 'li',
    className: 'todo',
    events: {
      'change input[type=checkbox]': 'toggle',
      'click .delete': 'destroy'
    },

    initialize: function () {
      this.listenTo(this.model, 'change', this.render);
    },

    render: function () {
      var done = Boolean(this.model.get('done'));
      this.$el.toggleClass('done', done).empty().append(
        $('<label>').append(
          $('<input type="checkbox">').prop('checked', done),
          $('<span class="title">').text(this.model.get('title'))
        ),
        $('<button type="button" class="delete">').attr('aria-label', 'Delete').text('×')
      );
      return this;
    },

    toggle: function () {
      this.model.toggle();
    },

    destroy: function () {
      this.model.destroy({wait: true});
    }
  });

  var TodosView = Backbone.View.extend({
    el: '#todos-app',
    events: {'submit #todo-form': 'add'},

    initialize: function () {
      this.$list = this.$('#todo-list');
      this.$input = this.$('#todo-input');
      this.listenTo(this.collection, 'add remove reset sort', this.render);
      this.listenTo(this.collection, 'change:done', this.count);
      this.listenTo(this.collection, 'error', this.showError);
      this.render();
    },

    render: function () {
      _.invoke(this.views || [], 'remove');
      this.views = this.collection.map(function (todo) { return new TodoView({model: todo}); });
      this.$list.empty().append(_.map(this.views, function (view) { return view.render().el; }));
      this.$('.empty').toggle(this.collection.isEmpty());
      this.count();
      return this;
    },

    count: function () {
      var left = this.collection.where({done: false}).length;
      var text = left + (left === 1 ? ' item' : ' items') + ' left';
      this.$('#todo-count').text(this.collection.isEmpty() ? '' : text);
    },

    add: function (event) {
      event.preventDefault();
      var title = this.$input.val().trim();
      if (!title) return;
      this.collection.create(
        {title: title, done: false, createdAt: new Date().toISOString()}, {wait: true});
      this.$input.val('').focus();
    },

    showError: function (model, error) {
      this.$('.error').prop('hidden', false)
        .text('The server said no: ' + ((error && error.message) || 'unknown error'));
    }
  });

  var ACTIVE = {done: false, $sort: {createdAt: 1}};

  function filterOf(hash) {
    return hash === '#/active' ? 'active' : 'all';
  }

  // Switching shows only the differences: subscribe() and fetch() both set().
  function show(todos, filter) {
    $('#todo-filters a').each(function () {
      var here = this.getAttribute('data-filter') === filter;
      $(this).toggleClass('selected', here).attr('aria-current', here ? 'true' : null);
    });
    $('#todo-list').attr('data-filter', filter);
    if (filter === 'active') return todos.subscribe(ACTIVE);
    todos.unsubscribe();
    return todos.fetch();
  }

  var todos = new Todos();
  todos.bindBackend();
  window.demo = {todos: todos, view: new TodosView({collection: todos})};
  window.addEventListener('hashchange', function () { show(todos, filterOf(location.hash)); });
  show(todos, filterOf(location.hash));
})();
