/* backbone.io.js: placeholder until the browser client lands (issue 3). */
