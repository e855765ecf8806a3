import { skip, type CheckResult } from '../domain/doctor.js';
import type { Check, DoctorContext } from './check.js';
import { configValid, secretFiles } from './config-checks.js';
import { controlReachable, hostView } from './control-checks.js';
import { dnsUpstreams } from './dns-check.js';
import { clockSkew, githubApp } from './github-checks.js';
import { cgroupsCheck, diskCheck, ipForwardCheck, kvmCheck, nftCheck, qemuCheck, qemuUserCheck, systemdCheck } from './host-checks.js';
import { imageCheck } from './image-check.js';
import { redisEviction, redisPersistence, redisReachable } from './redis-checks.js';

/**
 * Which checks a file calls for, in the report's order: both processes read Redis and secret
 * files; a control section adds GitHub; an agent section adds this machine as a VM host and the
 * control as the agent reaches it. The clock is compared with GitHub's when the file has a
 * control section, else with the control's.
 */
export function checksFor(ctx: Pick<DoctorContext, 'control' | 'agent'>): Check[] {
  const checks: Check[] = [configValid, secretFiles, redisReachable, redisEviction, redisPersistence];
  if (ctx.control) checks.push(githubApp);
  if (ctx.control || ctx.agent) checks.push(clockSkew);
  if (ctx.agent) {
    checks.push(controlReachable, hostView, imageCheck, kvmCheck, qemuCheck, qemuUserCheck, cgroupsCheck, systemdCheck, nftCheck, ipForwardCheck, dnsUpstreams, diskCheck);
  }
  return checks;
}

/** With config problems only the config check runs; the rest are listed as skipped, so the report's shape stays the same. */
export const ALL_CHECKS: readonly Check[] = checksFor({ control: {} as never, agent: {} as never });

export function skippedForConfig(): CheckResult[] {
  return ALL_CHECKS.filter((c) => c !== configValid).map((c) => ({ id: c.id, title: c.title, ...skip('the config has problems (see config)') }));
}
