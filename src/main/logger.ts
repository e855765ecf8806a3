import { pino, type Logger, type LevelWithSilent } from 'pino';

/**
 * The one pino root per process. Children carry the unit of work
 * (`{ deliveryId, workflowJobId, pool, host, vmId }`); messages are constant, data in fields.
 * `redact` is the last line of defence: secrets should never be handed to a logger at all.
 */
export const REDACT_PATHS = [
  'secret', '*.secret', 'token', '*.token', 'jitConfig', '*.jitConfig',
  'encoded_jit_config', '*.encoded_jit_config', 'encodedJitConfig', '*.encodedJitConfig', 'privateKey', '*.privateKey',
  'req.headers.authorization', 'req.headers["x-hub-signature-256"]', 'req.headers["x-hub-signature"]',
  'headers.authorization', 'headers["x-hub-signature-256"]', 'headers["x-hub-signature"]',
];

export function createLogger(name: string, level: LevelWithSilent = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
