import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv, type ValidateFunction } from 'ajv';
import formats from 'ajv-formats';

// ajv-formats is CommonJS: under NodeNext its default import is the module object.
const addFormats = formats as unknown as typeof formats.default;

/**
 * Validates a response body against GitHub's own OpenAPI description (the dereferenced
 * api.github.com document from @octokit/openapi), by operation path + method + status.
 * OpenAPI 3.0's `nullable` becomes `anyOf [schema, null]` so plain JSON Schema can check it.
 */
type Schema = Record<string, unknown>;
interface Operation {
  responses: Record<string, { content?: Record<string, { schema?: Schema }> }>;
}

let doc: { paths: Record<string, Record<string, Operation>> } | undefined;
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
const compiled = new Map<string, ValidateFunction | null>();

function openapi(): NonNullable<typeof doc> {
  if (!doc) {
    const file = createRequire(import.meta.url).resolve('@octokit/openapi/generated/api.github.com.deref.json');
    doc = JSON.parse(readFileSync(file, 'utf8')) as NonNullable<typeof doc>;
  }
  return doc;
}

const DROP = new Set(['example', 'examples', 'discriminator', 'xml', 'externalDocs', 'deprecated']);

export function toJsonSchema(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(toJsonSchema);
  if (s === null || typeof s !== 'object') return s;
  const out: Schema = {};
  for (const [k, v] of Object.entries(s as Schema)) {
    if (DROP.has(k) || k.startsWith('x-') || k === 'nullable') continue;
    // `properties` maps names to schemas: translate the values, keep the names.
    out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as Schema).map(([n, p]) => [n, toJsonSchema(p)])) : toJsonSchema(v);
  }
  if ((s as Schema).nullable === true) {
    if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
    return { anyOf: [out, { type: 'null' }] };
  }
  return out;
}

/** Every documented response status of an operation, e.g. ['201', '404', '409', '422']. */
export function statusesOf(method: string, path: string): string[] {
  const op = openapi().paths[path]?.[method.toLowerCase()];
  if (!op) throw new Error(`no operation ${method} ${path} in GitHub's OpenAPI description`);
  return Object.keys(op.responses);
}

/**
 * Throws with ajv's errors unless `body` matches the schema GitHub documents for this
 * operation and status. A status GitHub does not document for the operation is a failure too.
 */
export function expectGitHubShape(method: string, path: string, status: number, body: unknown): void {
  const key = `${method.toLowerCase()} ${path} ${status}`;
  if (!compiled.has(key)) {
    const op = openapi().paths[path]?.[method.toLowerCase()];
    if (!op) throw new Error(`no operation ${key} in GitHub's OpenAPI description`);
    const res = op.responses[String(status)];
    if (!res) throw new Error(`GitHub does not document status ${status} for ${method} ${path} (has ${Object.keys(op.responses).join(', ')})`);
    const schema = res.content?.['application/json']?.schema;
    compiled.set(key, schema ? ajv.compile(toJsonSchema(schema) as Schema) : null);
  }
  const validate = compiled.get(key);
  if (validate === null || validate === undefined) {
    if (body !== undefined && body !== '' && body !== null) throw new Error(`${key}: GitHub sends no body, the sim sent ${JSON.stringify(body).slice(0, 200)}`);
    return;
  }
  if (!validate(body)) {
    throw new Error(`${key}: response does not match GitHub's schema:\n${ajv.errorsText(validate.errors, { separator: '\n' })}`);
  }
}
