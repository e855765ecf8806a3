import { pino } from 'pino';
import { loadConfig, requireControl } from '../config/load.js';
import type { ControlConfig } from '../config/schema.js';
import { readControlSecrets } from '../config/secrets.js';
import { GitHubError } from '../domain/errors.js';
import { checkRunnerGroups, orgsOfPool, orgsToCheck, type GroupFacts, type GroupWarning } from '../domain/runner-groups.js';
import { createGitHubClient, type GitHubClient, type RunnerGroup } from '../github/index.js';
import { createLogger } from './logger.js';

/**
 * `hangar policy check-groups --config FILE [--json]`: reads the runner groups of every
 * organization an org-scope pool registers runners in and prints where they are wider than
 * the pool. Exit 0 with or without warnings (they are advice); 2 when GitHub could not be read.
 */
export async function policyCheckGroups(configFile: string, json: boolean): Promise<void> {
  const config = requireControl(loadConfig(configFile));
  const secrets = readControlSecrets(config);
  const github = createGitHubClient({
    apiUrl: config.github.apiUrl,
    appId: config.github.appId,
    privateKey: secrets.appPrivateKey,
    // stderr, so stdout stays the report (and only JSON with --json).
    logger: createLogger('hangar', config.log.level, pino.destination({ fd: 2, sync: true })),
  });
  let groups: GroupFacts[];
  try {
    groups = await readGroups(github, config);
  } catch (err) {
    if (!(err instanceof UnreadableOrg)) throw err;
    process.stderr.write(`hangar: ${err.message}\n`);
    process.exitCode = 2;
    return;
  }
  const findings = checkRunnerGroups(config, groups);
  process.stdout.write(json ? `${JSON.stringify(findings)}\n` : report(findings, groups));
}

/** GitHub could not be read for one organization; the message says what to check. */
class UnreadableOrg extends Error {}

async function readGroups(github: GitHubClient, config: ControlConfig): Promise<GroupFacts[]> {
  const out: GroupFacts[] = [];
  for (const org of orgsToCheck(config)) {
    try {
      for (const g of await github.listRunnerGroups(org)) out.push(await facts(github, config, org, g));
    } catch (err) {
      const status = err instanceof GitHubError ? err.status : 0;
      const why = err instanceof Error ? err.message : String(err);
      throw new UnreadableOrg(`cannot read the runner groups of ${org}: ${why}\n  ${hint(status, org, config.github.apiUrl)}`);
    }
  }
  return out;
}

/** Selected repositories are read only where a deploy pool uses the group: that is all the check asks of them. */
async function facts(github: GitHubClient, config: ControlConfig, org: string, g: RunnerGroup): Promise<GroupFacts> {
  const usedByDeploy = config.pools.some((p) => p.deploy && p.runnerGroupId === g.id && orgsOfPool(p, config).includes(org));
  const selected = g.visibility === 'selected' && usedByDeploy ? await github.listRunnerGroupRepositories(org, g.id) : [];
  return {
    org, id: g.id, name: g.name, visibility: g.visibility, allowsPublicRepositories: g.allowsPublicRepositories,
    restrictedToWorkflows: g.restrictedToWorkflows, selectedRepositories: selected.map((r) => r.fullName),
  };
}

function hint(status: number, org: string, apiUrl: string): string {
  if (status === 404) return `is ${org} an organization with the App installed? Runner groups are an organization feature; a personal account has none (use scope: repo there).`;
  if (status === 401 || status === 403) return `the App needs the organization permission "Self-hosted runners" (read) on ${org}, and github.appId and github.privateKeyFile must be the App's.`;
  return `GitHub at ${apiUrl} (github.apiUrl) did not answer as expected; check the URL and the network, then try again.`;
}

function report(findings: GroupWarning[], groups: GroupFacts[]): string {
  const orgs = [...new Set(groups.map((g) => g.org))];
  const lines = orgs.map((org) => `runner groups of ${org}: ${groups.filter((g) => g.org === org).map((g) => `${g.id} (${g.name})`).join(', ')}`);
  for (const f of findings) lines.push(`${f.level} [${f.code}] ${f.message}`);
  const warnings = findings.filter((f) => f.level === 'warning').length;
  lines.push(warnings === 0 ? 'no warnings' : `${warnings} warning(s)`);
  return `${lines.join('\n')}\n`;
}
