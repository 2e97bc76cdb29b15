// The Feathers 5 peer: a memory service whose creates are published to every
// other connection, the equivalent of a backboneio memory backend without a
// channel. Feathers' own socket protocol ("create", "messages", data, params).
//
// Usage: node feathers_server.js PORT
'use strict';

const { feathers } = require('@feathersjs/feathers');
const socketio = require('@feathersjs/socketio');
const { MemoryService } = require('@feathersjs/memory');

const port = Number(process.argv[2]);
const app = feathers();
// socket.io 4 leaves permessage-deflate off and Node's HTTP server sets
// TCP_NODELAY: the same production defaults the Python servers are given.
app.configure(socketio({ perMessageDeflate: false, maxHttpBufferSize: 1e6 }));
app.use('messages', new MemoryService({ paginate: false }));

app.on('connection', (connection) => app.channel('everybody').join(connection));
app.service('messages').publish('created', (data, context) =>
  app.channel('everybody').filter((connection) => connection !== context.params.connection)
);

app.listen(port, '127.0.0.1').then(() => {
  console.log(`feathers serving on http://127.0.0.1:${port}`);
});
