import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { createControlClient } from '../../src/agent/control-client.js';
import { openMetadataEndpoint, type GateReply } from '../../src/agent/metadata.js';
import type { Fleet } from '../../src/main/local-fleet.js';
import { freePort } from '../../src/main/local-redis.js';
import { runSimRunner } from '../../src/sim/runner.js';

/**
 * What an agent does for one job, without a VM: ask the control for a runner, open the runner's
 * metadata endpoint (on loopback: the "guest" is this host), and run the sim runner with the
 * real job-started hook the guest images carry, in the environment a guest's runner has.
 */
export const GATE_SCRIPT = fileURLToPath(new URL('../../src/vm/image/job-started.sh', import.meta.url));
const HOST_RUNNER_CLI = fileURLToPath(new URL('./host-runner-cli.ts', import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface HostRun {
  status: number;
  body: Record<string, any>;
  /** The gate's answer, when the runner got a job and asked. */
  gate: GateReply | null;
  jobId: number | null;
  exitCode: number | null;
}

export interface RunOnHostOptions {
  gateControlUrl?: string;
  /** Called once the runner is minted, before it runs: where an agent reports its VM up (the dashboard's tests). */
  onMinted?: (minted: { runnerName: string }) => Promise<void>;
}

export async function runOnHost(controlUrl: string, token: string, pool: string, workflowJobId: number, o: RunOnHostOptions = {}): Promise<HostRun> {
  const res = await fetch(`${controlUrl}/api/v1/jit`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ pool, workflowJobId }),
  });
  const body = (await res.json()) as Record<string, any>;
  if (res.status !== 201) return { status: res.status, body, gate: null, jobId: null, exitCode: null };
  await o.onMinted?.({ runnerName: body.runnerName });
  const control = createControlClient(o.gateControlUrl ?? controlUrl, token);
  const port = await freePort();
  const meta = await openMetadataEndpoint({
    hostIp: '127.0.0.1', guestIp: '127.0.0.1', port, logger: pino({ level: 'silent' }),
    gate: (hints) => control.jobStarted(body.runnerName, hints, 5_000),
  });
  try {
    const env = { ACTIONS_RUNNER_HOOK_JOB_STARTED: GATE_SCRIPT, HANGAR_METADATA_URL: `http://127.0.0.1:${port}` };
    const r = await runSimRunner(body.encodedJitConfig, { pollMs: 50, env }).catch((err: { status?: number }) => {
      // A run cancelled while its job ran: the sim refuses the result with 409, as GitHub would.
      if (err.status === 409) return { jobId: null, exitCode: null };
      throw err;
    });
    return { status: 201, body, gate: meta.answer, jobId: r.jobId, exitCode: r.exitCode };
  } finally {
    await meta.close();
  }
}

/**
 * runOnHost inside the fleet's build host (its namespace: the control on its loopback, the sim
 * through the router), as a second host beside the fleet's agent would.
 */
export async function runOnHostIn(fleet: Fleet, token: string, pool: string, workflowJobId: number): Promise<HostRun> {
  const input = JSON.stringify({ controlUrl: fleet.controlUrl, token, pool, workflowJobId });
  const r = await fleet.exec(fleet.netns.host, process.execPath, ['--import', TSX, HOST_RUNNER_CLI], { input, timeoutMs: 120_000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as HostRun;
}
