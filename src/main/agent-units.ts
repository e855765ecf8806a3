import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Server } from 'node:http';
import { Agent } from '../agent/agent.js';
import { createControlClient } from '../agent/control-client.js';
import type { GuestNetwork } from '../agent/guest-network.js';
import { resolveImage } from '../agent/image.js';
import { createCaps } from '../caps/create-caps.js';
import type { AgentSideConfig } from '../config/agent-schema.js';
import { redisTarget } from '../config/secrets.js';
import { connectRedis } from '../queue/redis-connect.js';
import { readAgentCa } from '../config/tls-files.js';
import { ConfigError, HangarError, StoreError } from '../domain/errors.js';
import { AgentMetrics } from '../metrics/agent-metrics.js';
import { createHostNetwork } from '../net/host-network.js';
import { createQemuMicrovmDriver, probeAccelerator } from '../vm/index.js';
import { serveAgentMetrics, startGuestNetwork } from './agent-network.js';
import { unit, type Unit } from './units.js';

/** Cgroups, taps and nftables rules: what `hangar agent` and `hangar up` make, so neither runs without root. */
export function requireRoot(command: string): void {
  if (process.getuid?.() !== 0) {
    throw new HangarError('not-root', `${command} must run as root (it makes cgroups, taps and nftables rules): run it with sudo or from its systemd unit`);
  }
}

/**
 * This host's agent as units, for `hangar agent` and `hangar up` alike: its files read and its
 * accelerator checked now (a bad token or a KVM that does not boot refuses the start, not every
 * job), its network, metrics, queue connection and workers when started. Started in order,
 * stopped in reverse: a clean stop leaves nothing (kill -9: the next start replaces it).
 */
export async function agentUnits(config: AgentSideConfig, configFile: string, logger: Logger): Promise<Unit[]> {
  const a = config.agent;
  const token = readToken(a.tokenFile);
  const image = resolveImage(a.vm.image);
  const accel = a.vm.accel === 'auto' ? 'auto' : a.vm.accel;
  if (accel === 'kvm') {
    // Refuse at start rather than fail every job: KVM that opens is not KVM that boots.
    const probe = await probeAccelerator({ accel: 'kvm', ...image });
    if (!probe.ok) throw new ConfigError(configFile, [{ path: 'agent.vm.accel', message: `kvm does not work here (${(probe.reason ?? '').replace(/\s*\n\s*/g, ' | ')}); use tcg or auto` }]);
  }
  const driver = createQemuMicrovmDriver({
    stateDir: join(a.stateDir, 'vms'),
    accel,
    ...(a.vm.runAs ? { runAs: a.vm.runAs } : {}),
    logger,
  });
  const caps = await createCaps({
    mode: a.caps.mode,
    sliceName: a.caps.slice,
    cpuQuotaPercent: a.caps.cpuQuotaPercent,
    memoryMaxBytes: a.caps.memoryMaxMiB * 1024 * 1024,
    tasksMax: a.caps.tasksMax,
  });
  const net = createHostNetwork({ range: a.network.range });
  // Its pools' queues only: everything else the agent says goes through the control.
  const target = redisTarget(config.redis);
  const connection = new Redis(target.url, { maxRetriesPerRequest: null, lazyConnect: true, ...target.options });
  // A certificate refused, or Redis away, at start: the agent stops with the reason (connectRedis),
  // as for the control's certificate, rather than retry in the background saying nothing. Later,
  // it reconnects; a refused certificate (Redis's was changed) is said louder than a dropped link.
  let connected = false;
  connection.on('error', (err: Error) => {
    if (connected && err instanceof StoreError && err.code === 'store-untrusted') logger.warn({ err: err.message }, 'redis certificate refused');
    else logger.debug({ err: err.message }, 'redis connection error');
  });
  let guestNet: GuestNetwork | undefined;
  let metrics: Server | undefined;
  let agent: Agent | undefined;
  const agentMetrics = new AgentMetrics();
  return [
    // Isolation on: Hangar's table replaces the masquerade-only one (atomically, whatever a
    // crashed run left); off: masquerade only, with a warning.
    unit('network', async () => {
      guestNet = await startGuestNetwork(a, config.pools, configFile, logger);
      if (!guestNet) await net.ensureEgress();
    }, () => (guestNet ? guestNet.stop() : net.removeEgress())),
    unit('metrics', async () => void (metrics = await serveAgentMetrics(a.metricsListen, guestNet, logger, agentMetrics.registry)), async () => void metrics?.close()),
    unit('queues', async () => {
      await connectRedis(connection, config.redis.url);
      connected = true;
    }, async () => connection.disconnect()),
    unit('agent', async () => {
      agent = new Agent({
        agent: a,
        prefix: config.redis.prefix,
        connection,
        parts: { driver, caps, net, ...(guestNet ? { guestNet } : {}) },
        pools: config.pools,
        control: createControlClient(a.controlUrl, token, {
          ...(a.controlCaFile ? { ca: readAgentCa(a.controlCaFile) } : {}),
          ...(a.controlCertSha256 ? { certSha256: a.controlCertSha256 } : {}),
        }),
        image,
        logger,
        metrics: agentMetrics,
      });
      await agent.start();
    }, () => agent!.drain()),
  ];
}

function readToken(file: string): string {
  try {
    const t = readFileSync(file, 'utf8').trim();
    if (t.length >= 16) return t;
    throw new ConfigError('agent', [{ path: 'agent.tokenFile', message: `${file} holds no token (at least 16 characters)` }]);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('agent', [{ path: 'agent.tokenFile', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` }]);
  }
}
