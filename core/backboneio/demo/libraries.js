// Runs after the library tags: when one did not load (no network for the
// CDN, most often), the page says so and how to serve them from this machine,
// instead of sitting on "connecting…".
(function () {
  'use strict';

  var script = document.currentScript;
  var wanted = [['_', 'Underscore'], ['jQuery', 'jQuery'], ['Backbone', 'Backbone'],
    ['io', 'socket.io-client']];
  var missing = wanted.filter(function (pair) { return !window[pair[0]]; })
    .map(function (pair) { return pair[1]; });
  if (!missing.length) return;

  var fromCdn = script.getAttribute('data-source') === 'cdn';
  var install = script.getAttribute('data-install');

  function paragraph(parent, text) {
    var p = document.createElement('p');
    p.textContent = text;
    parent.appendChild(p);
    return p;
  }

  function code(parent, text) {
    var pre = document.createElement('pre');
    pre.textContent = text;
    parent.appendChild(pre);
  }

  function show() {
    var status = document.getElementById('status');
    if (status) {
      status.textContent = 'not loaded';
      status.className = 'status offline';
    }
    var box = document.createElement('section');
    box.id = 'libraries-missing';
    box.className = 'problem';
    box.setAttribute('role', 'alert');
    paragraph(box, 'This page could not load ' + missing.join(', ') +
      (fromCdn ? ' from the cdn.jsdelivr.net CDN. This computer may have no internet ' +
        'connection, or something blocks that site.'
        : ' from the server\u2019s --assets folder.'));
    paragraph(box, 'Serve the libraries from this machine instead: install them once ' +
      '(this needs the npm registry) and restart the demo with --assets:');
    code(box, install + '\nbackboneio serve --demo --assets assets/node_modules');
    paragraph(box, 'In a checkout of backboneio, npm ci --prefix tests/js fills ' +
      'tests/js/node_modules, which backboneio serve --demo then finds by itself.');
    var main = document.querySelector('main') || document.body;
    main.insertBefore(box, main.firstChild);
  }

  window.backboneioMissingLibraries = missing;
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', show);
  else show();
})();
