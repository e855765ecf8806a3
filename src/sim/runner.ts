import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HangarError } from '../domain/errors.js';
import { decodeJitConfig } from './job-script.js';

/**
 * A sim runner on this host (runner.sh is the same for busybox guests): poll for the one job,
 * run its script with `sh` in a scratch directory, renewing the job's lock while it runs (as
 * actions/runner does), report exit code and output, done.
 */
export interface SimRunnerResult {
  jobId: number;
  exitCode: number;
}

export class SimRunnerError extends HangarError {
  readonly status: number;
  constructor(status: number, message: string) {
    super('sim-runner', message);
    this.status = status;
  }
}

const OUTPUT_LIMIT = 1024 * 1024;

export interface SimRunnerOptions {
  signal?: AbortSignal;
  pollMs?: number;
  /**
   * The runner's own environment, handed to its job as a real runner's is: this is where
   * `ACTIONS_RUNNER_HOOK_JOB_STARTED` (and what that hook needs) is set.
   */
  env?: Record<string, string>;
  /**
   * How often to renew the lock on the running job. Default: HANGAR_SIM_RENEW_SECONDS, else 5 s
   * (a real runner renews every 60 s; the sim's default lock timeout is 10 minutes).
   */
  renewMs?: number;
}

function renewEvery(opts: SimRunnerOptions): number {
  if (opts.renewMs !== undefined) return opts.renewMs;
  const env = process.env.HANGAR_SIM_RENEW_SECONDS;
  const seconds = env === undefined || env === '' ? 5 : Number(env);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`HANGAR_SIM_RENEW_SECONDS must be a positive number of seconds, got ${env}`);
  return seconds * 1000;
}

/**
 * Renews the job's lock every `everyMs` until stopped. A refusal (the job was cancelled or lost)
 * or a network error does not stop it: a real runner keeps trying while its job runs.
 */
function startRenewing(url: string, auth: Record<string, string>, everyMs: number): () => void {
  const stop = new AbortController();
  void (async () => {
    for (;;) {
      try {
        await sleep(everyMs, undefined, { signal: stop.signal });
        const res = await fetch(url, { method: 'POST', headers: auth, signal: stop.signal });
        await res.body?.cancel();
      } catch {
        if (stop.signal.aborted) return;
      }
    }
  })();
  return () => stop.abort();
}

export async function runSimRunner(encodedJitConfig: string, opts: SimRunnerOptions = {}): Promise<SimRunnerResult> {
  const config = decodeJitConfig(encodedJitConfig);
  const auth = { authorization: `RunnerToken ${config.token}` };
  const pollMs = opts.pollMs ?? 500;
  const renewMs = renewEvery(opts);
  for (;;) {
    opts.signal?.throwIfAborted();
    let res: Response;
    try {
      res = await fetch(`${config.url}/_runner/job`, { headers: auth, signal: opts.signal ?? null });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      await sleep(pollMs, undefined, { signal: opts.signal });
      continue; // the sim may be restarting; a runner keeps polling
    }
    if (res.status === 204 || res.status >= 500) {
      await res.body?.cancel();
      await sleep(pollMs, undefined, { signal: opts.signal });
      continue;
    }
    if (res.status !== 200) throw new SimRunnerError(res.status, `sim refused runner ${config.runnerName}: ${res.status}`);
    const jobId = Number(res.headers.get('x-sim-job-id'));
    const script = await res.text();
    const stopRenewing = startRenewing(`${config.url}/_runner/jobs/${jobId}/renew`, auth, renewMs);
    let ran: { exitCode: number; output: string };
    try {
      ran = await runScript(script, opts.signal, opts.env);
    } finally {
      stopRenewing();
    }
    const { exitCode, output } = ran;
    const done = await fetch(`${config.url}/_runner/jobs/${jobId}/result?exit=${exitCode}`, {
      method: 'POST', headers: { ...auth, 'content-type': 'text/plain; charset=utf-8' }, body: output,
    });
    await done.body?.cancel();
    if (!done.ok) throw new SimRunnerError(done.status, `sim refused the result of job ${jobId}: ${done.status}`);
    return { jobId, exitCode };
  }
}

/** Runs the job script; output is stdout and stderr interleaved, keeping the last MiB. */
async function runScript(script: string, signal?: AbortSignal, env?: Record<string, string>): Promise<{ exitCode: number; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-sim-runner-'));
  try {
    const file = join(dir, 'job.sh');
    await writeFile(file, script, { mode: 0o700 });
    const work = join(dir, 'work');
    await mkdir(work);
    signal?.throwIfAborted();
    return await new Promise((resolve, reject) => {
      // Its own process group, so an abort kills every step it started, not only the top sh.
      const child = spawn('sh', [file], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...env } });
      const kill = () => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      };
      const onAbort = () => {
        kill();
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let out = Buffer.alloc(0);
      const take = (chunk: Buffer) => {
        out = Buffer.concat([out, chunk]);
        if (out.length > OUTPUT_LIMIT) out = out.subarray(out.length - OUTPUT_LIMIT);
      };
      child.stdout.on('data', take);
      child.stderr.on('data', take);
      child.on('error', reject);
      child.on('close', (code, sig) => {
        signal?.removeEventListener('abort', onAbort);
        resolve({ exitCode: code ?? (sig ? 128 + 9 : 1), output: out.toString('utf8') });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
