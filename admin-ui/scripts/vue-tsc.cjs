#!/usr/bin/env node
// vue-tsc needs TypeScript's JavaScript compiler API, which TypeScript 7 (the native `tsc` the rest of
// the repo uses) no longer ships: run vue-tsc on the TypeScript 5 kept for it (devDependency
// `typescript-5`). Arguments are passed through, e.g. `-p admin-ui/tsconfig.json --noEmit`.
require('vue-tsc').run(require.resolve('typescript-5/lib/tsc'))
