/** Certificates for TLS tests: the same openssl-made CA and server certificates the local fleets use. */
export { makeCa, makeServerCert, type TestCa, type TestCert } from '../../src/main/local-certs.js';
