// The badge in the header: live, reconnecting, catching up after a
// reconnect (the server replays what this window missed), or resynced (the
// server no longer had those changes, so the list was fetched again).
(function () {
  'use strict';

  if (!window.Backbone || !Backbone.io) return;
  var $status = $('#status');

  function show(text, state, title) {
    $status.text(text).attr('class', 'status ' + state).attr('title', title || null);
  }

  // The root socket reconnects first; the backend's listen answer follows
  // after the changes it replays.
  Backbone.io.connect().on('connect', function () {
    if ($status.hasClass('offline')) show('catching up…', 'offline');
  });
  Backbone.io.on('listen', function (backend, channel, answer, info) {
    if (info && info.resumed && !info.recovered) {
      show('live · resynced', 'live resynced', 'The server no longer had the changes made ' +
        'while this window was away, so the list was loaded again.');
    } else if (info && info.resumed) {
      var missed = info.replayed + (info.replayed === 1 ? ' change' : ' changes');
      show('live · caught up on ' + missed, 'live',
        missed + ' made while this window was away arrived when it reconnected.');
    } else {
      show('live', 'live');
    }
  });
  Backbone.io.on('disconnect', function () { show('reconnecting…', 'offline'); });
})();
