// Type-checks a Grafana dashboard JSON against Grafana's published schema types (npm
// @grafana/schema): the dashboard as `Dashboard` and each panel's options as its panel plugin's
// `Options`, as object literals, so unknown fields (typos) and wrong value types fail. The schema's
// string enums are nominal in TypeScript; `Json<T>` turns each into the union of its values, which
// is what JSON holds.
// Run by `make grafana-check` in a throwaway directory holding typescript and @grafana/schema.
// Usage: node typecheck.mjs <dashboard.json>...
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";

const PLUGINS = {
  timeseries: "@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen",
  stat: "@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen",
};
const lines = [
  'import type { Dashboard } from "@grafana/schema";',
  "type Json<T> = T extends string ? `${T}` : T extends Array<infer U> ? Array<Json<U>>",
  "  : T extends object ? { [K in keyof T]: Json<T[K]> } : T;",
];
for (const [type, module] of Object.entries(PLUGINS)) {
  lines.push(`import type { Options as ${type}Options } from "${module}";`);
}
const files = process.argv.slice(2);
files.forEach((file, i) => {
  const dashboard = JSON.parse(readFileSync(file, "utf8"));
  lines.push(`// ${basename(file)}`);
  lines.push(`export const dashboard${i}: Json<Dashboard> = ${JSON.stringify(dashboard, null, 1)};`);
  for (const panel of dashboard.panels ?? []) {
    if (panel.type === "row") continue;
    if (!(panel.type in PLUGINS)) {
      console.error(`${file}: panel ${panel.id} has type ${panel.type}, which this check does not know`);
      process.exit(1);
    }
    lines.push(
      `export const options${i}_${panel.id}: Partial<Json<${panel.type}Options>> = ${JSON.stringify(panel.options ?? {})};`,
    );
  }
});
writeFileSync("check.ts", lines.join("\n") + "\n");
try {
  execFileSync(
    "npx",
    ["tsc", "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext",
     "--target", "es2022", "--skipLibCheck", "check.ts"],
    { stdio: "inherit" },
  );
} catch {
  console.error("grafana: the dashboard does not match @grafana/schema (errors above, in check.ts)");
  process.exit(1);
}
console.log(`grafana: ${files.length} dashboard(s) match @grafana/schema`);
