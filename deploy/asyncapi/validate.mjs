// Validates docs/asyncapi.yaml with the official AsyncAPI parser (npm @asyncapi/parser).
// Run by `make asyncapi-check`, which installs the parser in a throwaway directory.
// Usage: node validate.mjs <document>
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"), { source: path });
// Severity 0 = error, 1 = warning, 2 = info, 3 = hint.
for (const d of diagnostics) {
  console.log(`${["error", "warning", "info", "hint"][d.severity]} ${d.code}: ${d.message} at ${d.path.join(".")}`);
}
const errors = diagnostics.filter((d) => d.severity === 0);
if (!document || errors.length > 0) {
  console.error(`asyncapi: ${path} is invalid (${errors.length} errors)`);
  process.exit(1);
}
console.log(
  `asyncapi: ${path} is a valid AsyncAPI ${document.version()} document ` +
    `(${document.channels().length} channels, ${document.operations().length} operations, ` +
    `${document.components().schemas().length} schemas)`,
);
