import { expect, test } from 'vitest';
import { appManifest, PERMISSION_NEEDS, permissionsFor, type RunnerScope } from '../../src/domain/app-manifest.js';
import { defaultApiUrl } from '../../src/main/app-create.js';

test.each<[RunnerScope, Record<string, string>]>([
  ['repo', { actions: 'write', administration: 'write', metadata: 'read' }],
  ['org', { actions: 'write', organization_self_hosted_runners: 'write', metadata: 'read' }],
  ['both', { actions: 'write', administration: 'write', organization_self_hosted_runners: 'write', metadata: 'read' }],
])('runner scope %s: exactly these permissions, and workflow_job', (scope, want) => {
  const m = appManifest({ name: 'Hangar', webhookUrl: 'https://ci.example.com/webhooks/github', redirectUrl: 'http://127.0.0.1:1/callback', runnerScope: scope });
  expect(m.default_permissions).toEqual(want);
  expect(m.default_events).toEqual(['workflow_job']);
  expect(m).toMatchObject({ url: 'https://ci.example.com', public: false, hook_attributes: { url: 'https://ci.example.com/webhooks/github', active: true }, redirect_url: 'http://127.0.0.1:1/callback' });
});

test('every permission says why, naming what needs it', () => {
  for (const p of PERMISSION_NEEDS) expect(p.why.length, p.permission).toBeGreaterThan(30);
  expect(permissionsFor('repo').map((p) => p.permission)).not.toContain('organization_self_hosted_runners');
});

test.each([
  ['https://github.com', 'https://api.github.com'],
  ['https://ghe.example.com', 'https://ghe.example.com/api/v3'],
  ['https://ghe.example.com/', 'https://ghe.example.com/api/v3'],
])('API URL for %s: %s', (web, api) => expect(defaultApiUrl(web)).toBe(api));
