import { createRequire } from 'node:module';
import { Ajv, type ValidateFunction } from 'ajv';
import formats from 'ajv-formats';

// ajv-formats is CommonJS: under NodeNext its default import is the module object.
const addFormats = formats as unknown as typeof formats.default;

/** Validates `workflow_job` payloads against @octokit/webhooks-schemas (GitHub's webhook schema). */
const schema = createRequire(import.meta.url)('@octokit/webhooks-schemas/schema.json') as { definitions: Record<string, unknown> };
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ $id: 'webhooks', definitions: reachable(['workflow_job$queued', 'workflow_job$in_progress', 'workflow_job$completed', 'workflow_job$waiting']) });

/** Only the definitions the workflow_job schemas reach: compiling all of schema.json takes seconds. */
function reachable(roots: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const visit = (name: string) => {
    if (name in out) return;
    const def = schema.definitions[name];
    if (def === undefined) throw new Error(`webhook schema has no definition ${name}`);
    out[name] = def;
    for (const m of JSON.stringify(def).matchAll(/"\$ref":"#\/definitions\/([^"]+)"/g)) visit(m[1]!);
  };
  roots.forEach(visit);
  return out;
}
const cache = new Map<string, ValidateFunction>();

export function expectWorkflowJobPayload(payload: { action?: unknown }): void {
  const ref = `webhooks#/definitions/workflow_job$${String(payload.action)}`;
  let validate = cache.get(ref);
  if (!validate) {
    validate = ajv.getSchema(ref);
    if (!validate) throw new Error(`no webhook schema ${ref}`);
    cache.set(ref, validate);
  }
  if (!validate(payload)) {
    throw new Error(`workflow_job ${String((payload as { action?: unknown }).action)} payload does not match the webhook schema:\n${ajv.errorsText(validate.errors, { separator: '\n' })}`);
  }
}
