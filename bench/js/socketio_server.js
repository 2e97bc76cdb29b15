// The Node socket.io peer: socket.io 4 speaking Backbone.IO's wire, the same
// least-work server as bench/bare_server.py (listen answers the options, sync
// stores a create in a Map, emits `synced` to every other socket and acks
// [null, model]), on Node instead of Python. What a write costs on the
// fastest stack the protocol runs on.
//
// Usage: node socketio_server.js PORT
'use strict';

const http = require('http');
const crypto = require('crypto');
const { Server } = require('socket.io');

const port = Number(process.argv[2]);
const server = http.createServer();
// permessage-deflate off (socket.io 4's default) and TCP_NODELAY on (Node's
// HTTP server's default): the production defaults the Python servers get.
const io = new Server(server, { perMessageDeflate: false, maxHttpBufferSize: 1e6 });
const models = new Map();

io.of('/messages').on('connection', (socket) => {
  socket.on('listen', (...args) => {
    const ack = args.pop();
    if (typeof ack === 'function') ack({ event: 'backend', channel: args[0] ?? null });
  });
  socket.on('sync', (req, ack) => {
    const model = { ...((req && req.model) || {}) };
    if (req && req.method === 'read') return ack(null, [...models.values()]);
    if (req && req.method === 'create') {
      if (model.id === undefined) model.id = crypto.randomUUID().replace(/-/g, '');
      models.set(model.id, model);
      socket.broadcast.emit('synced', 'create', model);
    }
    return ack(null, model);
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`socket.io serving on http://127.0.0.1:${port}`);
});
