import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Certificates for the local fleets (the two-box demo's control) and the TLS tests, made with the
 * openssl CLI (Node verifies X.509 but cannot issue it; Debian's openssl package, which
 * test/setup.sh installs). P-256 keys: fast to make. Short-lived (2 days): never for production.
 */
export interface TestCa {
  dir: string;
  certFile: string;
  keyFile: string;
  pem: string;
}

export interface TestCert {
  certFile: string;
  keyFile: string;
  pem: string;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

export function makeCa(name = 'Hangar test CA', dir = mkdtempSync(join(tmpdir(), 'hangar-tls-'))): TestCa {
  const certFile = join(dir, 'ca.pem');
  const keyFile = join(dir, 'ca.key');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { dir, certFile, keyFile, pem: readFileSync(certFile, 'utf8') };
}

/** A server certificate for `altNames` (e.g. `IP:127.0.0.1`), signed by `ca`, or self-signed without one. */
export function makeServerCert(ca: TestCa | null, altNames = ['IP:127.0.0.1', 'DNS:localhost'], dir = mkdtempSync(join(tmpdir(), 'hangar-tls-'))): TestCert {
  const n = Math.random().toString(36).slice(2, 8);
  const certFile = join(dir, `server-${n}.pem`);
  const keyFile = join(dir, `server-${n}.key`);
  const san = `subjectAltName=${altNames.join(',')}`;
  if (!ca) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=hangar-control', '-addext', san]);
  } else {
    const csr = join(dir, `server-${n}.csr`);
    const ext = join(dir, `server-${n}.ext`);
    writeFileSync(ext, `${san}\nextendedKeyUsage=serverAuth\n`);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', '/CN=hangar-control']);
    openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
  }
  return { certFile, keyFile, pem: readFileSync(certFile, 'utf8') };
}
