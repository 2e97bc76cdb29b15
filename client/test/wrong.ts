// Each line ending in an "error:" comment must fail to type-check, and no other
// line may (tests/browser/test_bundle.py); usage.ts is the same API used right.
import Backbone from 'backbone';
import backboneIO from 'backboneio-client';

backboneIO.connect({syncTimout: 5000}); // error: a misspelled option
backboneIO.connect({syncTimeout: '5s'}); // error: not a number
backboneIO.connect({refetch: 'no'}); // error: not a boolean
backboneIO.conect(); // error: no such method
new Backbone.Collection().bindBackend({refetch: 1}); // error: not a boolean
class Items extends Backbone.Collection {}
Items.prototype.backend = {name: 'items', chanel: 'room'}; // error: a misspelled key
Items.prototype.backend = 42; // error: not a spec
const err = backboneIO.links()[0].backend.status; // error: a string has no status
backboneIO.connect({onConflict: 'merge'}); // error: neither 'keep' nor 'server'
backboneIO.connect({giveUpAfter: 'an hour'}); // error: not a number
backboneIO.refresh(42); // error: not a token nor an auth object
new Backbone.Model().save(null, {idempotencyKey: 7}); // error: a key is a string
const busy: string = new Backbone.Model().pending; // error: pending is a boolean
