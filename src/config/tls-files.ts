import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, type ConfigProblem } from '../domain/errors.js';
import type { ControlConfig } from './control-schema.js';
import { isRecord } from './schema.js';

/**
 * The TLS files of both sides: the control's private listener (`control.private.tls`, its
 * certificate and key), what an agent trusts the control by (`agent.controlCaFile`) and what
 * every process trusts a rediss:// Redis by (`redis.tls.caFile`). Checked
 * as `hangar config check` sees them and read when the process starts; a key's content is never
 * in a message.
 */

/** The private listener's certificate and key, or null when it has no `tls` (loopback only, checkListeners). */
export function readControlTls(config: ControlConfig): { cert: string; key: string } | null {
  const tls = config.control.private.tls;
  if (!tls) return null;
  const r = readPair(tls.certFile, tls.keyFile);
  if (r.problems.length > 0) throw new ConfigError('tls', r.problems);
  return { cert: r.cert!, key: r.key! };
}

/** `control.private.tls` as written: each unusable file named by its key. */
export function checkControlTlsFiles(input: Record<string, unknown>): ConfigProblem[] {
  const c = isRecord(input.control) ? input.control : {};
  const p = isRecord(c.private) ? c.private : {};
  const tls = isRecord(p.tls) ? p.tls : undefined;
  if (!tls || typeof tls.certFile !== 'string' || typeof tls.keyFile !== 'string') return [];
  return readPair(tls.certFile, tls.keyFile).problems;
}

/** `agent.controlCaFile` as written: readable, and PEM certificates. */
export function checkAgentTlsFiles(input: Record<string, unknown>): ConfigProblem[] {
  const a = isRecord(input.agent) ? input.agent : {};
  if (typeof a.controlCaFile !== 'string' || a.controlCaFile === '') return [];
  const r = readCa(a.controlCaFile);
  return 'problem' in r ? [{ path: 'agent.controlCaFile', message: r.problem }] : [];
}

/** `redis.tls.caFile` as written: readable, and PEM certificates. */
export function checkRedisTlsFiles(input: Record<string, unknown>): ConfigProblem[] {
  const redis = isRecord(input.redis) ? input.redis : {};
  const tls = isRecord(redis.tls) ? redis.tls : {};
  if (typeof tls.caFile !== 'string' || tls.caFile === '') return [];
  const r = readCa(tls.caFile);
  return 'problem' in r ? [{ path: 'redis.tls.caFile', message: r.problem }] : [];
}

/** The PEM the agent trusts the control by (agent.controlCaFile); ConfigError naming the key when unusable. */
export function readAgentCa(file: string): string {
  return readCaFile(file, 'agent.controlCaFile');
}

/** A CA file (PEM certificates) that `key` names; ConfigError naming the key when unusable. */
export function readCaFile(file: string, key: string): string {
  const r = readCa(file);
  if ('problem' in r) throw new ConfigError('tls', [{ path: key, message: r.problem }]);
  return r.pem;
}

/** The sha256 of a certificate's DER bytes, lowercase hex without colons (what agent.controlCertSha256 holds). */
export function certSha256(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

function readCa(file: string): { pem: string } | { problem: string } {
  const r = read(file);
  if (!r.ok) return { problem: r.message };
  if (!r.text.includes('-----BEGIN CERTIFICATE-----')) return { problem: `${file} holds no PEM certificate` };
  try {
    new X509Certificate(r.text);
  } catch {
    return { problem: `${file} is not a readable PEM certificate` };
  }
  return { pem: r.text };
}

function readPair(certFile: string, keyFile: string): { cert?: string; key?: string; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const cert = read(certFile);
  const key = read(keyFile);
  let certPem: string | undefined;
  if (!cert.ok) problems.push({ path: 'control.private.tls.certFile', message: cert.message });
  else if (!cert.text.includes('-----BEGIN CERTIFICATE-----')) problems.push({ path: 'control.private.tls.certFile', message: `${certFile} holds no PEM certificate` });
  else certPem = cert.text;
  if (!key.ok) problems.push({ path: 'control.private.tls.keyFile', message: key.message });
  else if (!key.text.includes('PRIVATE KEY-----')) problems.push({ path: 'control.private.tls.keyFile', message: `${keyFile} is not a PEM private key` });
  if (certPem && key.ok && problems.length === 0) {
    try {
      if (!new X509Certificate(certPem).checkPrivateKey(createPrivateKey(key.text))) {
        problems.push({ path: 'control.private.tls.keyFile', message: `${keyFile} is not the key of the certificate in ${certFile}` });
      }
    } catch {
      problems.push({ path: 'control.private.tls.certFile', message: `${certFile} and ${keyFile} are not a readable certificate and key` });
    }
  }
  return problems.length > 0 ? { problems } : { cert: `${certPem}\n`, key: `${(key as { text: string }).text}\n`, problems };
}

function read(file: string): { ok: true; text: string } | { ok: false; message: string } {
  try {
    return { ok: true, text: readFileSync(file, 'utf8').trim() };
  } catch (err) {
    return { ok: false, message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` };
  }
}
