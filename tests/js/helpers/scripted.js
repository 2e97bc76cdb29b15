'use strict';
// A Socket.IO server (the real `socket.io` package) whose answers a test
// writes itself: for wire cases a backboneio server never produces on cue,
// such as a repeated entry, a lost epoch or a 0.4 server without positions.

const http = require('node:http');
const {Server} = require('socket.io');

// One backend namespace. `handlers.listen(socket, args, ack)`,
// `handlers.sync(socket, request, ack)` and `handlers.refresh(socket, auth,
// ack)` (default: accepted) answer, and so do `handlers.subscribe(socket,
// args, ack)` and `handlers.unsubscribe(socket, args, ack)` when given (live
// queries); what arrived is in `calls`, and every connection's handshake auth
// in `calls.auth`.
async function scriptedServer(backend, handlers, {port = 0} = {}) {
  const httpServer = http.createServer();
  const io = new Server(httpServer, {transports: ['websocket']});
  const calls = {listen: [], sync: [], refresh: [], auth: [], subscribe: [], unsubscribe: []};
  const sockets = [];
  io.of('/' + backend).on('connection', (socket) => {
    sockets.push(socket);
    calls.auth.push(socket.handshake.auth);
    socket.on('refresh', (auth, ack) => {
      calls.refresh.push(auth);
      if (handlers.refresh) handlers.refresh(socket, auth, ack);
      else ack(null, {expires_at: null});
    });
    socket.on('listen', (...args) => {
      const ack = args.pop();
      calls.listen.push(args);
      handlers.listen(socket, args, ack);
    });
    socket.on('sync', (request, ack) => {
      calls.sync.push(request);
      handlers.sync(socket, request, ack);
    });
    for (const name of ['subscribe', 'unsubscribe']) {
      if (!handlers[name]) continue;
      socket.on(name, (...args) => {
        const ack = args.pop();
        calls[name].push(args);
        handlers[name](socket, args, ack);
      });
    }
  });
  await new Promise((resolve) => httpServer.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${httpServer.address().port}`,
    calls,
    // The newest socket of the backend that is still connected.
    socket: () => sockets.filter((s) => s.connected).pop(),
    close: () => new Promise((resolve) => io.close(() => resolve())),
  };
}

module.exports = {scriptedServer};
