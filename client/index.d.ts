// backboneio-client through require(): `const backboneIO = require('backboneio-client')`.
// module.exports is Backbone.io; requiring it also adds it to the `backbone`
// module (types.d.ts has the types, also as backboneIO.ConnectOptions and so on).
import type * as types from './dist/types.cjs';

declare const backboneIO: types.BackboneIO;
declare namespace backboneIO {
  export type BackendName = types.BackendName;
  export type BackendSpec = types.BackendSpec;
  export type BackendOption = types.BackendOption;
  export type NotificationMethod = types.NotificationMethod;
  export type ServerModel = types.ServerModel;
  export type ConnectOptions = types.ConnectOptions;
  export type BindOptions = types.BindOptions;
  export type Position = types.Position;
  export type ErrorName = types.ErrorName;
  export type BackboneIOError = types.BackboneIOError;
  export type LinkRef = types.LinkRef;
  export type ListenAnswer = types.ListenAnswer;
  export type ListenInfo = types.ListenInfo;
  export type ResyncInfo = types.ResyncInfo;
  export type LinkInfo = types.LinkInfo;
  export type NotificationHandler = types.NotificationHandler;
  export type MethodNotificationHandler = types.MethodNotificationHandler;
  export type ResyncHandler<O = Parameters<types.ResyncHandler>[0]> = types.ResyncHandler<O>;
  export type PresenceMember<S extends object = Record<string, unknown>> = types.PresenceMember<S>;
  export type PresenceAnswer<S extends object = Record<string, unknown>> = types.PresenceAnswer<S>;
  export type PresenceMembers<S extends object = Record<string, unknown>> = types.PresenceMembers<S>;
  export type BackboneIOEvents = types.BackboneIOEvents;
  export type BackboneIO = types.BackboneIO;
}
export = backboneIO;
