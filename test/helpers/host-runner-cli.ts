/**
 * runOnHost in a process of its own, so a test can run it inside a fleet's build-host namespace
 * (`runOnHostIn`): `nsenter --net=/run/netns/NAME node --import tsx host-runner-cli.ts`, its
 * arguments as JSON on stdin (the token stays off the command line), one JSON line out (HostRun).
 */
import { text } from 'node:stream/consumers';
import { runOnHost } from './host-runner.js';

const a = JSON.parse(await text(process.stdin)) as { controlUrl: string; token: string; pool: string; workflowJobId: number; gateControlUrl?: string };
const r = await runOnHost(a.controlUrl, a.token, a.pool, a.workflowJobId, a.gateControlUrl ? { gateControlUrl: a.gateControlUrl } : {});
process.stdout.write(`${JSON.stringify(r)}\n`);
// Keep-alive sockets to the control and the sim must not hold the process open.
process.exit(0);
