import { createHash } from 'node:crypto';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { AbstractConnector, type RedisOptions } from 'ioredis';
import { StoreError } from '../domain/errors.js';

/**
 * How a rediss:// connection trusts Redis (config `redis.tls`), as plain data: it crosses into
 * the outbox thread as workerData, where functions cannot go. Same shape and wording as the
 * agent's trust in the control (agent/control-transport.ts).
 */
export interface RedisTrust {
  /** PEM: the CA that signed Redis's certificate, or that certificate itself (redis.tls.caFile). */
  ca?: string;
  /** The sha256 of Redis's certificate (DER), lowercase hex (redis.tls.certSha256). */
  certSha256?: string;
  /** The name its certificate must carry, when it is not the host in redis.url (redis.tls.serverName). */
  serverName?: string;
}

/**
 * The ioredis options that make every connection of a client (and its duplicates: BullMQ's
 * workers make their own) check Redis's certificate: a connector of ours, because Node calls
 * `checkServerIdentity` only once the chain verified, so a pin alone (a self-signed
 * certificate) could not stand there. A certificate that does not match refuses the connection
 * with the reason (StoreError `store-untrusted`); on a client's first connection it ends the
 * client (ioredis would otherwise retry it forever, saying nothing), later it is retried like
 * any other failure, with the reason as the error.
 */
export function redisTlsOptions(url: string, trust: RedisTrust): Pick<RedisOptions, 'tls' | 'Connector'> {
  const u = new URL(url);
  const where = `rediss://${u.host}`;
  const tls: ConnectionOptions = {
    ...(trust.ca !== undefined ? { ca: trust.ca } : {}),
    ...(trust.serverName !== undefined ? { servername: trust.serverName } : {}),
  };
  class TrustingConnector extends AbstractConnector {
    private verified = false;
    private readonly options: ConnectorOptions;
    constructor(options: unknown) {
      const o = options as ConnectorOptions;
      super(o.disconnectTimeout ?? 2000);
      this.options = o;
    }

    connect(): Promise<TLSSocket> {
      this.connecting = true;
      return new Promise((resolve, reject) => {
        // As ioredis's own connector: a disconnect() called in the same tick wins.
        process.nextTick(() => {
          if (!this.connecting) return reject(new Error('Connection is closed.'));
          const o = this.options;
          const socket = tlsConnect({
            host: o.host ?? '127.0.0.1', port: o.port ?? 6379, ...(o.family ? { family: o.family } : {}), ...tls,
            // Verified below, on secureConnect: so that the reason is ours, and a pin can stand alone.
            rejectUnauthorized: false,
          });
          this.stream = socket;
          this.firstError = undefined;
          // ioredis times a connection only while it is connecting; this one is handed over once checked.
          const timeoutMs = o.connectTimeout ?? 10_000;
          const timer = setTimeout(() => {
            // Connected but no handshake: a plain Redis reads the TLS hello as a command and waits for its end.
            if (!socket.connecting) this.firstError = new StoreError('store-unavailable', `Redis at ${where} did not answer the TLS handshake in ${timeoutMs / 1000} s: is the port in redis.url its tls-port? A plain port needs redis:// and no redis.tls`);
            socket.destroy(Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' }));
          }, timeoutMs);
          const onError = (err: NodeJS.ErrnoException) => void (this.firstError ??= describeTlsFailure(err, where) ?? err);
          // Destroyed before it was checked: ioredis reports firstError and reconnects, as for a refused port.
          const onClose = () => {
            clearTimeout(timer);
            resolve(socket);
          };
          socket.once('error', onError);
          socket.once('close', onClose);
          socket.once('secureConnect', () => {
            clearTimeout(timer);
            socket.off('close', onClose);
            socket.off('error', onError);
            const why = untrusted(socket, trust, where);
            if (!why) {
              this.verified = true;
              return resolve(socket);
            }
            socket.destroy();
            if (!this.verified) return reject(why);
            this.firstError = why;
            resolve(socket);
          });
        });
      });
    }
  }
  return { tls, Connector: TrustingConnector };
}

/** What ioredis hands a connector (its options, from the url and the caller's). */
interface ConnectorOptions {
  host?: string;
  port?: number;
  family?: number;
  connectTimeout?: number;
  disconnectTimeout?: number;
}

/** Why Redis's certificate is not the one trusted, or null when it is. */
function untrusted(socket: TLSSocket, trust: RedisTrust, where: string): StoreError | null {
  const pinOnly = trust.ca === undefined && trust.certSha256 !== undefined;
  if (!pinOnly && !socket.authorized) {
    const why = String(socket.authorizationError ?? 'not verified');
    const source = trust.ca !== undefined ? 'redis.tls.caFile' : "this machine's CAs (set redis.tls.caFile or redis.tls.certSha256 for a private CA or a self-signed certificate)";
    const what = /ALTNAME|HOSTNAME|IP:/i.test(why)
      ? `does not name ${trust.serverName !== undefined ? `${trust.serverName} (redis.tls.serverName)` : `${new URL(`${where}/`).hostname} (the host in redis.url; redis.tls.serverName may name another)`}`
      : `is not signed by ${source}`;
    return new StoreError('store-untrusted', `Redis at ${where}: its TLS certificate ${what} (${why}): refusing to connect`);
  }
  if (trust.certSha256 !== undefined) {
    const cert = socket.getPeerCertificate();
    const got = cert?.raw ? createHash('sha256').update(cert.raw).digest('hex') : '(none)';
    if (got !== trust.certSha256) return new StoreError('store-untrusted', `Redis at ${where}: its TLS certificate pin mismatch: redis.tls.certSha256 is ${trust.certSha256}, Redis presented ${got}: refusing to connect`);
  }
  return null;
}

/** A TLS failure before the handshake ended, as the operator can act on it; null for a network error. */
function describeTlsFailure(err: NodeJS.ErrnoException, where: string): StoreError | null {
  const code = err.code ?? '';
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || /wrong version number|packet length too long/i.test(String(err.message))) {
    return new StoreError('store-untrusted', `Redis at ${where} does not speak TLS (${code || 'wrong version'}): is the port in redis.url its tls-port? A plain port needs redis:// and no redis.tls`);
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return new StoreError('store-untrusted', `TLS with Redis at ${where} failed (${code})`);
  return null;
}
