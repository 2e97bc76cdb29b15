// The same package through require() (the "require" condition: index.d.ts).
import Backbone = require('backbone');
import backboneIO = require('backboneio-client');

const options: backboneIO.ConnectOptions = {syncTimeout: 1000};
const socket = backboneIO.connect(options);
const spec: backboneIO.BackendSpec = {name: 'messages', channel: 'room-1'};
const messages = new Backbone.Collection([], {backend: spec}).bindBackend();
backboneIO.on('error', (err: backboneIO.BackboneIOError) => console.log(err.status));
console.log(socket.id, messages.length, Backbone.io === backboneIO);
