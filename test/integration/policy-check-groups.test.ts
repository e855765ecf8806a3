import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { GroupWarning } from '../../src/domain/runner-groups.js';
import { createSim, type Sim } from '../../src/sim/server.js';

/**
 * `hangar policy check-groups` from dist/ (built by `npm test`), as an operator runs it,
 * against an in-process sim that holds the organization's runner groups. No Redis needed.
 */
const hangar = (args: string[]) => execa('node', ['dist/main/cli.js', ...args], { reject: false, timeout: 30_000 });

let sim: Sim;
let dir: string;
let deployGroup: number;

/** A control config: the App's key and a webhook secret beside it, pools as given (YAML flow mappings). */
function writeConfig(name: string, o: { apiUrl?: string; repositories?: string[]; pools: string[] }): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `
github: {apiUrl: "${o.apiUrl ?? sim.url}", appId: ${sim.appId}, privateKeyFile: ${dir}/app.pem, webhookSecretFile: ${dir}/secret}
policy: {repositories: [${(o.repositories ?? ['acme/*']).map((r) => `"${r}"`).join(', ')}]}
pools:
${o.pools.map((p) => `  - ${p}`).join('\n')}
dashboard: {enabled: false}
log: {level: warn}
`);
  return file;
}

const BUILD = '{name: build, scope: org, labels: [self-hosted, build]}';
const deployPool = (group: number) => `{name: deploy, scope: org, runnerGroupId: ${group}, labels: [self-hosted, deploy], deploy: {repositories: [acme/site], branches: [main]}}`;

beforeAll(async () => {
  if (!existsSync('dist/main/policy-check-groups.js')) throw new Error('dist/ is missing hangar policy check-groups: run npm run build (npm test does)');
  sim = await createSim({ appId: 42, installationId: 7 });
  await sim.listen(0, '127.0.0.1');
  for (const name of ['app', 'site']) sim.createRepo({ owner: 'acme', name, visibility: 'private' });
  dir = mkdtempSync(join(tmpdir(), 'hangar-check-groups-'));
  writeFileSync(join(dir, 'app.pem'), sim.appPrivateKeyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'secret'), 'test-webhook-secret', { mode: 0o600 });
  deployGroup = sim.setRunnerGroup({ org: 'acme', name: 'deploy', visibility: 'selected', selectedRepositories: ['acme/site', 'acme/app'] }).id;
});
afterAll(async () => {
  await sim?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('hangar policy check-groups', () => {
  test('prints each warning with what to change, and exits 0', async () => {
    const file = writeConfig('loose', { pools: [BUILD, deployPool(deployGroup), '{name: solo, labels: [self-hosted, solo]}'] });
    const r = await hangar(['policy', 'check-groups', '--config', file]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`runner groups of acme: 1 (Default), ${deployGroup} (deploy)`);
    expect(lines).toContain(`warning [repository-outside-deploy] deploy pool deploy: runner group ${deployGroup} "deploy" of acme is open to acme/app, which the pool's deploy.repositories (acme/site) does not list; remove them from the group's repository access in the organization's settings, Actions → Runner groups`);
    expect(r.stdout).toMatch(/^warning \[not-restricted-to-workflows\] deploy pool deploy: /m);
    expect(r.stdout).toMatch(/^info \[repo-scope\] pool solo registers its runners on repositories: runner groups are an organization feature/m);
    expect(lines.at(-1)).toBe('2 warning(s)');
  });

  test('--json prints only the findings', async () => {
    const file = writeConfig('loose-json', { pools: [BUILD, deployPool(deployGroup)] });
    const r = await hangar(['policy', 'check-groups', '--config', file, '--json']);
    expect(r.exitCode).toBe(0);
    const findings = JSON.parse(r.stdout) as GroupWarning[];
    expect(findings.map(({ pool, org, groupId, code, level }) => ({ pool, org, groupId, code, level }))).toEqual([
      { pool: 'deploy', org: 'acme', groupId: deployGroup, code: 'repository-outside-deploy', level: 'warning' },
      { pool: 'deploy', org: 'acme', groupId: deployGroup, code: 'not-restricted-to-workflows', level: 'warning' },
    ]);
  });

  test('groups as narrow as the pools: "no warnings"; a group id the organization lacks is named', async () => {
    const tight = sim.setRunnerGroup({
      org: 'acme', name: 'deploy-tight', visibility: 'selected', restrictedToWorkflows: true,
      selectedWorkflows: ['acme/site/.github/workflows/deploy.yml@refs/heads/main'], selectedRepositories: ['acme/site'],
    });
    const ok = await hangar(['policy', 'check-groups', '--config', writeConfig('tight', { pools: [BUILD, deployPool(tight.id)] })]);
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout.trim().split('\n').at(-1)).toBe('no warnings');
    const missing = await hangar(['policy', 'check-groups', '--config', writeConfig('missing', { pools: [deployPool(4242)] }), '--json']);
    expect(missing.exitCode).toBe(0);
    expect(JSON.parse(missing.stdout)).toMatchObject([{ pool: 'deploy', groupId: 4242, code: 'group-missing' }]);
  });

  test('an organization GitHub cannot show: exit 2, naming it and what to check', async () => {
    const file = writeConfig('unknown-org', { repositories: ['acme/*', 'nobody/tool'], pools: [BUILD] });
    const r = await hangar(['policy', 'check-groups', '--config', file]);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('hangar: cannot read the runner groups of nobody: get org installation: GitHub answered 404');
    expect(r.stderr).toContain('is nobody an organization with the App installed?');
  });

  test('GitHub not reachable: exit 2 with the URL to check (after the client\'s retries, some seconds)', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const file = writeConfig('down', { apiUrl: down, pools: [BUILD] });
    const r = await hangar(['policy', 'check-groups', '--config', file]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('hangar: cannot read the runner groups of acme:');
    expect(r.stderr).toContain(`GitHub at ${down} (github.apiUrl) did not answer as expected`);
  });
});

/** A port nothing listens on: one the kernel just handed out and took back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
