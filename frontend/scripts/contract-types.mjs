// The wire contract's TypeScript types, generated from the JSON Schema the server writes
// (python -m exformer.contract.schema → docs/schema/exformer-v1.schema.json):
//
//   node scripts/contract-types.mjs [--out src/contract.ts]    (npm run types)
//
// The output depends on the schema alone (no dates, no paths, a fixed formatting), so
// tests/test_contract_types.py can regenerate it and compare it byte for byte.

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { compile } from "json-schema-to-typescript";

const FRONTEND = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SCHEMA_NAME = "docs/schema/exformer-v1.schema.json";

const { values: args } = parseArgs({
  options: {
    schema: { type: "string", default: resolve(FRONTEND, "..", SCHEMA_NAME) },
    out: { type: "string", default: resolve(FRONTEND, "src", "contract.ts") },
  },
});

const BANNER = `// Generated from ${SCHEMA_NAME} by \`npm run types\` (frontend/scripts/contract-types.mjs).
// Do not edit: change exformer/contract/, run \`python -m exformer.contract.schema\`, then \`cd frontend && npm run types\`.`;

/** Enums the page needs at run time (select options, URL validation), as `as const` lists. */
const ENUMS = [
  ["BASELINES", "Baseline", "#/$defs/GradientsRequest/properties/baseline"],
  ["BASELINE_SPECIALS", "BaselineSpecials", "#/$defs/GradientsRequest/properties/baseline_specials"],
  ["METHODS", "Method", "#/$defs/GradientsRequest/properties/method"],
  ["SCORES", "Score", "#/$defs/GradientsRequest/properties/score"],
  ["RETURNS", "Returned", "#/$defs/GradientsRequest/properties/return/anyOf/0/items"],
  ["FORMATS", "GradientsFormat", "#/$defs/GradientsRequest/properties/format"],
  ["ENCODINGS", "AttentionEncoding", "#/$defs/AttentionRequest/properties/encoding"],
  ["HEADS", "ModelHead", "#/$defs/ModelDetails/properties/head"],
];

const schema = JSON.parse(readFileSync(args.schema, "utf8"));

/** A model that extends another (`x-extends`, written by exformer.contract.schema) becomes an interface
 * that extends it, declaring only what it adds or changes, so each field has one place. */
function withExtends(defs) {
  const out = structuredClone(defs);
  for (const definition of Object.values(out)) {
    const base = defs[definition["x-extends"]];
    if (!base) continue;
    const inherited = (key) => JSON.stringify(base.properties?.[key]) === JSON.stringify(definition.properties[key]);
    for (const key of Object.keys(definition.properties ?? {})) if (inherited(key)) delete definition.properties[key];
    definition.required = (definition.required ?? []).filter((key) => !(base.required ?? []).includes(key) || key in definition.properties);
    definition.extends = [{ $ref: `#/$defs/${definition["x-extends"]}` }];
  }
  return out;
}

/** A JSON pointer's node; an `anyOf: [{enum}, {type: null}]` gives its enum member. */
function enumAt(pointer) {
  let node = schema;
  for (const key of pointer.replace(/^#\//, "").split("/")) {
    node = node?.[key.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  const member = node?.enum ? node : node?.anyOf?.find((m) => Array.isArray(m.enum));
  if (!member?.enum?.every((v) => typeof v === "string")) {
    throw new Error(`${args.schema}: no string enum at ${pointer} (the contract changed? update ENUMS in ${fileURLToPath(import.meta.url)})`);
  }
  return member.enum;
}

/** pydantic titles every property ("Text", "N Steps"); each title would become a type alias of
 * its own (Text, Text1, Text2, ...), so only the models in $defs keep theirs. */
function withoutPropertyTitles(node) {
  if (Array.isArray(node)) return node.map(withoutPropertyTitles);
  if (node === null || typeof node !== "object") return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "properties") {
      out.properties = Object.fromEntries(
        // a $ref with siblings (a default, a description) would become a copy of the type (Generate1)
        Object.entries(value).map(([name, { title: _title, ...property }]) =>
          [name, property.$ref ? { $ref: property.$ref } : withoutPropertyTitles(property)]),
      );
    } else {
      out[key] = withoutPropertyTitles(value);
    }
  }
  return out;
}

/** Every place an enum of ENUMS appears (a request's `method` and a response's, say) refers to
 * its one named type instead of spelling the union out again (`tsType`); the type itself is
 * written once, with its run-time list, below. */
function withNamedEnums(node, named) {
  if (Array.isArray(node)) return node.map((item) => withNamedEnums(item, named));
  if (node === null || typeof node !== "object") return node;
  const name = Array.isArray(node.enum) ? named.get(JSON.stringify(node.enum)) : undefined;
  if (name) {
    const { enum: _values, type: _type, ...rest } = node;
    return { ...rest, tsType: name };
  }
  return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, withNamedEnums(value, named)]));
}

const named = new Map(ENUMS.map(([, typeName, pointer]) => [JSON.stringify(enumAt(pointer)), typeName]));
const prepared = withNamedEnums(withoutPropertyTitles({ ...schema, $defs: withExtends(schema.$defs) }), named);
const types = await compile(prepared, "ExformerContract", {
  bannerComment: BANNER,
  cwd: dirname(resolve(args.schema)),
  additionalProperties: false,
  unreachableDefinitions: true, // every model in $defs, referenced or not
  strictIndexSignatures: false,
  unknownAny: true,
  enableConstEnums: false,
  format: true,
  style: {
    parser: "typescript",
    printWidth: 120,
    tabWidth: 2,
    useTabs: false,
    semi: true,
    singleQuote: false,
    bracketSpacing: true,
    trailingComma: "all",
    endOfLine: "lf",
  },
});

const lists = ENUMS.map(([constName, typeName, pointer]) => {
  const values = enumAt(pointer).map((v) => JSON.stringify(v)).join(", ");
  return `/** ${pointer} */\nexport const ${constName} = [${values}] as const;\nexport type ${typeName} = (typeof ${constName})[number];\n`;
});

const out = `${types.trimEnd()}\n\n// --- enums as run-time lists (from the same schema) ---\n\n${lists.join("\n")}`;
writeFileSync(args.out, out);
console.log(`${args.out}: ${out.length} characters from ${args.schema}`);
