// backboneio-client as an ES module: `import backboneIO from 'backboneio-client'`.
// The default export is Backbone.io; importing the module also adds it to the
// `backbone` module (types.d.ts has the types).
import type {BackboneIO} from './dist/types.mjs';

export * from './dist/types.mjs';

declare const backboneIO: BackboneIO;
export default backboneIO;
