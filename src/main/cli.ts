#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { HangarError } from '../domain/errors.js';
import { versionString } from './version.js';

/** `hangar <command>`: wiring only. Each command lives in its own module under src/main/. */

const program = new Command('hangar')
  .description('Self-hosted GitHub Actions runners: one ephemeral microVM per job.')
  .version(versionString(), '-V, --version', 'the version, and the git commit it was built from')
  .showHelpAfterError();

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('expected a whole number');
  return n;
};

const config = program.command('config').description('work with hangar.yaml');
config
  .command('check')
  .argument('<file>', 'the config file')
  .description('validate a config file and its secret files; list every problem')
  .action(async (file: string) => (await import('./config-check.js')).configCheck(file));

program
  .command('doctor')
  .requiredOption('-c, --config <file>', 'the config file (its control and/or agent section)')
  .option('--json', 'print {ok, checks: [{id, status, detail, fix}]}')
  .description('what is wrong on this host for the sections the config has, and how to fix each (exit 1: something failed; 2: the config cannot be read)')
  .action(async (opts: { config: string; json?: boolean }) => (await import('./doctor.js')).doctor(opts.config, { json: Boolean(opts.json) }));

const policy = program.command('policy').description('the rules that decide which jobs Hangar runs');
policy
  .command('explain')
  .argument('<payload>', 'a workflow_job webhook payload (JSON file)')
  .requiredOption('-c, --config <file>', 'the config file')
  .option('--json', 'print only the decision as JSON')
  .description('why this workflow_job would be accepted, rejected or ignored')
  .action(async (payload: string, opts: { config: string; json?: boolean }) =>
    (await import('./policy-explain.js')).policyExplain(payload, opts.config, Boolean(opts.json)),
  );

policy
  .command('check-groups')
  .requiredOption('-c, --config <file>', 'the config file (its github section and pools)')
  .option('--json', 'print only the findings as JSON')
  .description('whether the runner groups of org-scope pools are as narrow as the pools (exit 2: GitHub could not be read)')
  .action(async (opts: { config: string; json?: boolean }) =>
    (await import('./policy-check-groups.js')).policyCheckGroups(opts.config, Boolean(opts.json)),
  );

program
  .command('egress')
  .argument('<workflowJobId>', 'the workflow job id')
  .requiredOption('-c, --config <file>', 'the config file (its redis section)')
  .option('--json', 'print the record as JSON')
  .description('what a job\'s VM was refused (destinations) and which names it asked for')
  .action(async (id: string, opts: { config: string; json?: boolean }) => (await import('./egress-show.js')).egressShow(id, opts.config, Boolean(opts.json)));

program
  .command('reconcile')
  .requiredOption('-c, --config <file>', 'the control\'s config file')
  .option('--once', 'one pass of every loop, then exit (the running control reconciles on its own)')
  .option('--dry-run', 'print the plan only: take no lock, change nothing')
  .option('--json', 'print the passes as JSON')
  .description('converge Redis and GitHub: lost deliveries, queued runs no delivery announced, orphaned runners, idle VMs, stuck jobs, hosts gone quiet')
  .action(async (opts: { config: string; once?: boolean; dryRun?: boolean; json?: boolean }) => {
    if (!opts.once) {
      process.stderr.write('hangar: reconcile needs --once (the control runs reconcile continuously on its own)\n');
      process.exitCode = 2;
      return;
    }
    await (await import('./reconcile-once.js')).reconcileOnce(opts.config, { dryRun: Boolean(opts.dryRun), json: Boolean(opts.json) });
  });

program
  .command('status')
  .requiredOption('-c, --config <file>', 'the control\'s config file (its dashboard section and operator token)')
  .option('--json', 'print the overview JSON as the dashboard API gives it')
  .option('--url <url>', 'the dashboard\'s URL (default: from dashboard.listen)')
  .description('hosts, pools, recent jobs and refusals, savings: the dashboard in a terminal')
  .action(async (opts: { config: string; json?: boolean; url?: string }) =>
    (await import('./status.js')).status(opts.config, { json: Boolean(opts.json), ...(opts.url ? { url: opts.url } : {}) }),
  );

program
  .command('control')
  .requiredOption('-c, --config <file>', 'the config file')
  .description('run the control plane: webhooks, policy, queue, metrics')
  .action(async (opts: { config: string }) => (await import('./control.js')).runControl(opts.config));

program
  .command('agent')
  .requiredOption('-c, --config <file>', 'the config file (its agent section)')
  .description('run this host\'s agent: take jobs for its pools, one microVM per job')
  .action(async (opts: { config: string }) => (await import('./agent.js')).runAgent(opts.config));

program
  .command('up')
  .requiredOption('-c, --config <file>', 'the config file (control and agent sections; without redis.url, a Redis of its own)')
  .description('one box: the control and this host\'s agent in one process, with its own Redis when the config names none')
  .action(async (opts: { config: string }) => (await import('./up.js')).runUp(opts.config));

program
  .command('sim')
  .description('run a local GitHub (REST subset, signed webhooks, sim runners) for tests and the demo')
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--port <port>', 'port to listen on (0: any free port)', int, 0)
  .option('--webhook-url <url>', 'where to send workflow_job webhooks')
  .option('--webhook-secret-file <file>', 'file holding the webhook secret')
  .option('--app-id <id>', 'the GitHub App id', int, 1)
  .option('--app-key-file <file>', 'the GitHub App private key (PEM); the sim verifies App JWTs with its public half')
  .option('--installation-id <id>', 'the installation id of the App', int, 1)
  .option('--public-url <url>', 'the URL runners (e.g. inside microVMs) use to reach the sim; default: the listen URL')
  .option('--socket <path>', 'also serve on this unix socket (to drive a sim in another network namespace)')
  .action(async (opts) => (await import('./sim.js')).runSim(opts));

const image = program.command('image').description('guest images for the microVMs');
image
  .command('build')
  .argument('<kind>', 'test (busybox + the sim runner) or runner (Debian + the GitHub Actions runner)')
  .requiredOption('-o, --out <dir>', 'where to write vmlinux, initramfs.cpio (rootfs.img) and manifest.json')
  .option('--runner-tarball <file>', 'runner only: actions-runner-linux-x64-<version>.tar.gz (it cannot be downloaded by Hangar)')
  .option('--runner-sha256 <hex>', 'runner only: the SHA-256 GitHub publishes for that tarball; the build stops if it differs')
  .option('--free-mib <n>', 'runner only: free space in the root file system for jobs', int)
  .option('--cache <dir>', 'where downloaded packages are kept (default $HANGAR_CACHE or ~/.cache/hangar)')
  .description('build a guest image from Debian packages')
  .action(async (kind: string, opts: { out: string; cache?: string; runnerTarball?: string; runnerSha256?: string; freeMib?: number }) => {
    const { runImageBuild } = await import('./image.js');
    const common = { out: opts.out, verbose: true, ...(opts.cache ? { cacheDir: opts.cache } : {}) };
    if (kind === 'test') await runImageBuild({ kind, ...common });
    else if (kind === 'runner') {
      await runImageBuild({
        kind, ...common, ...(opts.runnerTarball ? { runnerTarball: opts.runnerTarball } : {}), ...(opts.runnerSha256 ? { runnerSha256: opts.runnerSha256 } : {}),
        ...(opts.freeMib ? { freeMiB: opts.freeMib } : {}),
      });
    } else throw new InvalidArgumentError(`unknown image kind "${kind}" (known: test, runner)`);
  });

const app = program.command('app').description('the GitHub App Hangar acts as');
app
  .command('create')
  .requiredOption('--webhook-url <url>', 'where GitHub sends webhooks: the control\'s public https://HOST/webhooks/github')
  .requiredOption('--out <dir>', 'where to write app-id, github-app-key.pem and webhook-secret (mode 0600; never overwritten)')
  .option('--org <org>', 'create the App for this organization (default: your user account)')
  .option('--name <name>', 'the App\'s name (GitHub\'s page lets you change it)', 'Hangar')
  .option('--github-url <url>', 'GitHub\'s web address: https://github.com, a GHES host, or hangar sim\'s URL', 'https://github.com')
  .option('--api-url <url>', 'the REST API (default: api.github.com for github.com, <github-url>/api/v3 otherwise)')
  .option('--runner-scope <scope>', 'repo, org or both: which runner permission to ask for (default: repo, or both with --org)')
  .option('--port <port>', 'the local page\'s port on 127.0.0.1 (0: any free one)', int, 0)
  .description('create the GitHub App with the permissions Hangar needs (GitHub\'s App-manifest flow, through a page on 127.0.0.1)')
  .action(async (opts: { webhookUrl: string; out: string; org?: string; name: string; githubUrl: string; apiUrl?: string; runnerScope?: string; port: number }) => {
    const scope = opts.runnerScope;
    if (scope !== undefined && scope !== 'repo' && scope !== 'org' && scope !== 'both') throw new HangarError('app-runner-scope', `--runner-scope: expected repo, org or both, not "${scope}"`);
    await (await import('./app-create.js')).appCreate({
      out: opts.out, webhookUrl: opts.webhookUrl, name: opts.name, githubUrl: opts.githubUrl, port: opts.port,
      ...(opts.org ? { org: opts.org } : {}), ...(opts.apiUrl ? { apiUrl: opts.apiUrl } : {}), ...(scope ? { runnerScope: scope } : {}),
    });
  });

const host = program.command('host').description('hosts that run jobs');
host
  .command('token')
  .argument('<file>', 'where to write the new token (mode 0600; give it to the agent as agent.tokenFile)')
  .description('make a host token; prints the sha256 the control keeps (hosts[].tokenSha256)')
  .action(async (file: string) => (await import('./host-token.js')).hostToken(file));
host
  .command('add')
  .argument('<name>', 'the host\'s name (its hosts[] entry)')
  .requiredOption('--role <role>', 'build or deploy')
  .requiredOption('--pools <pools>', 'the pools it serves, comma-separated')
  .requiredOption('-c, --config <file>', 'the control\'s config file (its redis.url is the admin connection)')
  .option('--out <dir>', 'where to write NAME.token and NAME.redis-password (mode 0600)', '.')
  .description('enrol a host: its token and a Redis ACL user that reaches only its pools\' queues; prints the agent\'s config and the hosts entry')
  .action(async (name: string, opts: { role: string; pools: string; config: string; out: string }) => {
    if (opts.role !== 'build' && opts.role !== 'deploy') throw new HangarError('host-role', `--role: expected build or deploy, not "${opts.role}"`);
    const pools = opts.pools.split(',').map((p) => p.trim()).filter((p) => p !== '');
    await (await import('./host-enroll.js')).hostAdd(name, { role: opts.role, pools, config: opts.config, out: opts.out });
  });
host
  .command('remove')
  .argument('<name>', 'the host\'s name')
  .requiredOption('-c, --config <file>', 'the control\'s config file (its redis.url is the admin connection)')
  .description('revoke a host: deletes its Redis ACL user (its connections close) and says how its token is revoked')
  .action(async (name: string, opts: { config: string }) => (await import('./host-enroll.js')).hostRemove(name, opts));

const units = program.command('units').description('systemd units for this host');
units
  .command('render')
  .requiredOption('-c, --config <file>', 'the config file: the control unit for a control section, the agent unit and the runner slice (agent.caps) for an agent section')
  .option('--out <dir>', 'where to write them (e.g. /etc/systemd/system)', '.')
  .option('--hangar-bin <path>', 'the hangar command ExecStart runs', '/usr/bin/hangar')
  .option('--force', 'replace unit files there with other text')
  .description('write the systemd units for the sections the config has; ExecStart names the config, LoadCredential= its credential:NAME paths')
  .action(async (opts: { config: string; out: string; hangarBin: string; force?: boolean }) =>
    (await import('./units-render.js')).unitsRender(opts.config, { out: opts.out, hangarBin: opts.hangarBin, force: Boolean(opts.force) }),
  );

program
  .command('demo')
  .option('--keep', 'keep everything running until Ctrl-C')
  .option('--jobs <n>', 'jobs in the nightly batch', int, 24)
  .description('a whole installation on this machine (Redis, a local GitHub, control, agent, microVMs) running a nightly batch')
  .action(async (opts: { keep?: boolean; jobs: number }) => (await import('./demo.js')).runDemo(opts));

// A mistake an operator can fix (HangarError: a config's problems, not root, Redis away, a token
// file that exists) is said plainly, without a stack; anything else is a bug and stays loud.
program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof HangarError) {
    process.stderr.write(`hangar: ${err.message}\n`);
  } else {
    process.stderr.write(`hangar: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exitCode = 1;
});
