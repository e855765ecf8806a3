import { parseDnsUpstream } from '../config/network-checks.js';
import { fail, ok } from '../domain/doctor.js';
import { askUpstreams, type Upstream } from '../net/dns-upstream.js';
import { parseQuery, type Question } from '../net/dns-wire.js';
import type { Check } from './check.js';

/** What the guests will ask most: GitHub's own name. An NXDOMAIN is an answer too. */
const PROBE_NAME = 'github.com';

/**
 * Each of agent.network.dns.upstreams asked once, over UDP as the forwarder asks (net/dns-upstream.ts),
 * within the doctor's timeout. Every one must answer: the forwarder gives each its share of a
 * question's time, so a dead one slows every lookup even when another answers.
 */
export const dnsUpstreams: Check = {
  id: 'dns-upstreams',
  title: "the DNS forwarder's upstreams answer",
  async run(ctx) {
    const list = ctx.agent!.agent.network.dns.upstreams;
    const dead: string[] = [];
    for (const text of list) {
      const p = parseDnsUpstream(text);
      if (!p.ok) continue; // The config check names it.
      const u: Upstream = { host: p.address, port: p.port };
      const got = await askUpstreams([u], question(), { timeoutMs: ctx.timeoutMs, tcp: false, signal: AbortSignal.timeout(ctx.timeoutMs + 500) });
      if (!got) dead.push(`${p.address}:${p.port}`);
    }
    if (dead.length > 0) {
      return fail(`no answer to "${PROBE_NAME} A" within ${ctx.timeoutMs} ms from ${dead.join(', ')} (of ${list.join(', ')})`, `make ${dead.join(', ')} answer DNS (\`dig @${dead[0]!.replace(/:(\d+)$/, ' -p $1')} ${PROBE_NAME}\`), or remove it from agent.network.dns.upstreams`);
    }
    return ok(`${list.join(', ')} answer "${PROBE_NAME} A"`);
  },
};

function question(): Question {
  const labels = PROBE_NAME.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')]));
  const header = Buffer.from([0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  const msg = Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
  const q = parseQuery(msg);
  if (q.kind !== 'query') throw new Error('the probe question does not parse');
  return q.question;
}
