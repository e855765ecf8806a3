import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { PolicyConfig } from '../domain/policy.js';
import { PayloadError, SignatureError } from '../domain/errors.js';
import { toHttp, type HttpAnswer } from '../domain/http-errors.js';
import type { BadSignatures } from './bad-signatures.js';
import type { JobStore } from '../jobs/intake-record.js';
import type { IntakeMetrics } from './metrics.js';
import { deliveryIdOf, ingestDelivery } from './ingest.js';
import { verifySignature } from './verify.js';

/**
 * `POST /webhooks/github`: verify → parse → decide → record (ingest.ts), then 202. Nothing here talks to
 * GitHub or a VM; the one I/O is a single Redis script (jobs/intake-record.ts), so the answer is fast and
 * means "stored". Errors map to HTTP in domain/http-errors.ts, as everywhere in the control.
 */
export interface IntakeDeps {
  webhookSecrets: readonly string[];
  policy: PolicyConfig;
  store: JobStore;
  metrics: IntakeMetrics;
  logger: Logger;
  badSignatures: BadSignatures;
}

const JSON_TYPE = /^application\/json\s*(;|$)/i;
const EMPTY = Buffer.alloc(0);
// Strict: a byte that is not UTF-8 is an error, not U+FFFD. ignoreBOM false: a leading BOM is dropped.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

export async function intakeRoutes(app: FastifyInstance, deps: IntakeDeps): Promise<void> {
  // Every body as its bytes, whatever its type (this plugin's parsers only): the signature is
  // over those bytes; handle() checks the type once the sender is known to hold the secret.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.post('/webhooks/github', async (req, reply) => {
    const started = process.hrtime.bigint();
    const result = await handle(req.headers, (req.body as Buffer | undefined) ?? EMPTY, deps).catch((err: unknown) => replyError(err, deps.logger));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    deps.metrics.deliveries.inc({ result: result.label });
    deps.metrics.latency.observe({ result: result.label }, seconds);
    return send(reply, result);
  });
}

type Outcome = HttpAnswer;

async function handle(headers: Record<string, string | string[] | undefined>, body: Buffer, deps: IntakeDeps): Promise<Outcome> {
  const header = headers['x-github-delivery'];
  const deliveryId = deliveryIdOf(header);
  const signature = verifySignature(deps.webhookSecrets, body, headers['x-hub-signature-256']);
  if (signature !== 'valid') {
    deps.badSignatures.record(signature, deliveryId);
    throw new SignatureError('X-Hub-Signature-256 is missing or does not match: check that the webhook secret matches the GitHub App\'s');
  }
  const type = headers['content-type'];
  if (typeof type !== 'string' || !JSON_TYPE.test(type)) {
    throw new PayloadError('Content-Type', "only application/json is taken: set the webhook's content type to application/json");
  }
  const event = headers['x-github-event'];
  const r = await ingestDelivery(
    { deliveryId, event: typeof event === 'string' ? event : undefined, payload: () => parseJson(body) },
    { policy: deps.policy, store: deps.store, logger: deps.logger, decisions: deps.metrics.decisions, jobs: deps.metrics.jobs },
  );
  switch (r.label) {
    case 'ping':
      return { status: 200, label: 'ping', body: { result: 'pong' } };
    case 'ignored-event':
      return { status: 202, label: r.label, body: { result: 'ignored', event: String(event ?? '') } };
    case 'ignored-action':
    case 'ignored-hosted':
      return { status: 202, label: r.label, body: { result: 'ignored' } };
    default:
      return { status: 202, label: r.label, body: { result: r.label, decision: r.decision } };
  }
}

function parseJson(body: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new PayloadError('(body)', 'not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new PayloadError('(body)', 'not valid JSON');
  }
}

function replyError(err: unknown, logger: Logger): HttpAnswer {
  const answer = toHttp(err);
  if (answer.status === 503) logger.warn({ err: (err as Error).message }, 'webhook not stored: redis unavailable');
  else if (answer.status >= 500) logger.error({ err }, 'webhook failed');
  return answer;
}

function send(reply: FastifyReply, o: HttpAnswer): FastifyReply {
  if (o.headers) void reply.headers(o.headers);
  return reply.code(o.status).send(o.body);
}
