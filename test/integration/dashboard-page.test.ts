import { copyFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { JobDetail, Overview } from '../../src/dashboard/api-types.js';
import { dollars, WHERE } from '../../src/dashboard/page/format.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { focusKey, inPage, launchBrowser, login, openPage, screenshot, type WatchedPage } from '../helpers/browser.js';
import { OPERATOR_TOKEN, startTestControl, TEST_SECRET, type TestControl } from '../helpers/control.js';
import { expectPageBuilt } from '../helpers/page-build.js';
import { runOnHost } from '../helpers/host-runner.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * The dashboard page in Debian's Chromium against a real control, Redis and the sim: webhooks
 * through the intake, heartbeats and job reports through the agents' API with a host token, as
 * an agent sends them (no agent, no VM: test/e2e has those). The page is what `npm run build`
 * made (dist/dashboard/page/).
 */
const BUILD = 'build-host-token-0123456789abcdef';
const DEPLOY = 'deploy-host-token-0123456789abcdef';
const XSS = '<img src=x onerror=alert(1)>';

let sim: Sim;
let control: TestControl;
let dash: string;
let redis: Redis;
let prefix: string;
let browser: Browser;
let w: WatchedPage;
const pages: WatchedPage[] = [];
let beat: ReturnType<typeof setInterval> | undefined;
let busy = 0;

const api = async <T>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> => {
  const r = await fetch(new URL(path, dash), { ...init, headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, ...(init.headers ?? {}) } });
  return { status: r.status, body: (await r.json().catch(() => null)) as T };
};
const overview = async (): Promise<Overview> => (await api<Overview>('/api/v1/overview')).body;

/** The build host's agent, as far as the control can tell: its heartbeat every few seconds. */
const heartbeat = () =>
  fetch(`${control.url}/api/v1/hosts/self/heartbeat`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${BUILD}`, 'content-type': 'application/json' },
    body: JSON.stringify({ slots: 2, busy, vms: [], draining: false }),
  });

const report = (id: number, body: Record<string, unknown>) =>
  fetch(`${control.url}/api/v1/jobs/${id}/report`, { method: 'POST', headers: { authorization: `Bearer ${BUILD}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(async (r) => {
    expect(r.status, `report ${JSON.stringify(body)}: ${await r.clone().text()}`).toBe(200);
  });

/** Runs a job as the build host's agent would report it: minted, VM up, the runner runs it (the gate asked), VM ended. */
async function runJob(id: number, end: Record<string, unknown> = {}): Promise<void> {
  const vmId = `vm-${id}`;
  let runnerName = '';
  busy++;
  await heartbeat();
  try {
    const r = await runOnHost(control.url, BUILD, 'build', id, {
      onMinted: async (m) => {
        runnerName = m.runnerName;
        await report(id, { kind: 'vm-up', vmId, runnerName });
      },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    await report(id, { kind: 'vm-ended', end: 'ran', vmId, runnerName, vmMs: 1500, exitCode: r.exitCode ?? 0, startedJob: r.jobId, ...end });
  } finally {
    busy--;
    await heartbeat();
  }
}

/** A runner minted for the job, as the build host's agent asks for one (nothing runs it). */
async function mint(id: number): Promise<{ runnerName: string }> {
  const r = await fetch(`${control.url}/api/v1/jit`, { method: 'POST', headers: { authorization: `Bearer ${BUILD}`, 'content-type': 'application/json' }, body: JSON.stringify({ pool: 'build', workflowJobId: id }) });
  expect(r.status).toBe(201);
  return (await r.json()) as { runnerName: string };
}

/** Starts a run in the sim; resolves once the control recorded each job (the dashboard's API shows it). */
async function queue(run: Parameters<Sim['createRun']>[0]): Promise<number[]> {
  const ids = sim.createRun(run).jobs.map((j) => j.id);
  await sim.idle();
  await expect.poll(async () => (await Promise.all(ids.map((id) => api(`/api/v1/jobs/${id}`)))).every((r) => r.status === 200), { timeout: 10_000 }).toBe(true);
  return ids;
}

const jobRow = (p: WatchedPage, id: number) => p.page.locator(`#jobs-body tr[data-job-id="${id}"]`);
const text = async (p: WatchedPage, selector: string): Promise<string> => ((await p.page.locator(selector).first().textContent({ timeout: 2000 }).catch(() => '')) ?? '').replace(/\s+/g, ' ').trim();

async function watched(o: Parameters<typeof openPage>[1] = {}): Promise<WatchedPage> {
  const p = await openPage(browser, o);
  pages.push(p);
  return p;
}

beforeAll(async () => {
  expectPageBuilt();
  prefix = testPrefix();
  redis = new Redis(redisUrl());
  sim = await createSim({ appId: 9, installationId: 3 });
  const simUrl = await sim.listen(0, '127.0.0.1');
  control = await startTestControl({
    redisUrl: redisUrl(),
    prefix,
    apiUrl: simUrl,
    appId: 9,
    appKeyPem: sim.appPrivateKeyPem,
    hosts: [
      { name: 'minipc', role: 'build', pools: ['build'], token: BUILD },
      { name: 'cloud', role: 'deploy', pools: ['deploy'], token: DEPLOY },
    ],
    dashboard: '{listen: "127.0.0.1:0"}',
  });
  dash = control.dashboard!.url!;
  sim.setWebhook({ url: `${control.webhookUrl}/webhooks/github`, secret: TEST_SECRET });
  sim.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
  sim.createRepo({ owner: 'acme', name: 'nightly', visibility: 'private' });
  sim.createRepo({ owner: 'mallory', name: 'app', visibility: 'private', forkOf: 'acme/app' });
  await heartbeat();
  beat = setInterval(() => void heartbeat().catch(() => undefined), 5000);
  browser = await launchBrowser();
});

afterAll(async () => {
  clearInterval(beat);
  for (const p of pages) await p.close().catch(() => undefined);
  await browser?.close();
  await control?.close();
  await sim?.close();
  await dropPrefix(redisUrl(), prefix);
  redis?.disconnect();
});

describe('the dashboard page', () => {
  test('without the token the page sends the browser to the login, and the API answers 401', async () => {
    const p = await watched();
    const res = await p.page.goto(new URL('/', dash).href);
    expect(new URL(p.page.url()).pathname).toBe('/login');
    expect(res?.status()).toBe(200);
    expect(await p.page.locator('main[data-ready]').count()).toBe(0);
    for (const path of ['/api/v1/overview', '/api/v1/stream', '/api/v1/session']) {
      expect((await fetch(new URL(path, dash))).status, path).toBe(401);
      expect((await fetch(new URL(path, dash), { headers: { authorization: 'Bearer not-the-operator-token-at-all' } })).status, path).toBe(401);
    }
    // A wrong token typed into the form stays on the login.
    await p.page.locator('input[name="token"]').fill('not-the-operator-token-at-all');
    await p.page.locator('form [type="submit"]').first().click();
    await p.page.waitForLoadState();
    expect(new URL(p.page.url()).pathname).toBe('/login');
    expect(p.problems().filter((m) => !/401/.test(m))).toEqual([]);
  });

  test('logged in, every section shows what the API says', async () => {
    const [waiting] = await queue({ repo: 'acme/app', workflowName: 'CI', jobs: [{ name: 'lint', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    w = await watched();
    expect(new URL(await login(w.page, dash, OPERATOR_TOKEN)).pathname).toBe('/');
    const o = await overview();

    // Hosts: the build host up with its slots, the deploy host (no heartbeat) down.
    await expect.poll(() => text(w, '#hosts-body tr[data-host="minipc"] .host-state')).toMatch(/^up/);
    expect(await text(w, '#hosts-body tr[data-host="minipc"] .slots')).toContain('0 / 2');
    expect(await text(w, '#hosts-body tr[data-host="cloud"] .host-state')).toMatch(/^down/);
    expect(o.hosts.map((h) => [h.name, h.up])).toEqual([['minipc', true], ['cloud', false]]);

    // Pools: the waiting job, and why it waits.
    const build = o.pools.find((p) => p.name === 'build')!;
    expect(build.waiting).toBe(1);
    await expect.poll(() => text(w, '#pools-body tr[data-pool="build"] [data-field="waiting"]')).toBe('1');
    expect(await text(w, '#pools-body tr[data-pool="build"] .oldest')).toContain(`#${waiting}`);

    // Jobs: the job, its repository, workflow and labels, waiting.
    const row = jobRow(w, waiting!);
    await expect.poll(() => row.getAttribute('data-result')).toBe('waiting');
    expect(await row.textContent()).toContain('acme/app');
    expect(await row.textContent()).toContain('CI');
    expect(await row.textContent()).toContain('lint');
    expect(await row.locator('.labels li').allTextContents()).toEqual(o.jobs.find((j) => j.workflowJobId === waiting)!.labels);

    // Savings: the API's figures, as the page writes them.
    expect(await text(w, '#savings-body [data-field="saved"]')).toBe(dollars(o.savings.saved));
    expect(await text(w, '#savings-body [data-field="month"]')).toBe(o.savings.month);
    expect(w.problems()).toEqual([]);
  });

  test('a job moving from queued to done updates the open page without a reload', async () => {
    const waiting = (await overview()).jobs.find((j) => j.jobName === 'lint')!.workflowJobId;
    await inPage(w.page, `window.__sameDocument = 'still-here'`);
    const navigations = w.navigations.length;
    await runJob(waiting);
    const row = jobRow(w, waiting);
    await expect.poll(() => row.getAttribute('data-result'), { timeout: 15_000 }).toBe('succeeded');
    expect(await row.locator('.phases li').evaluateAll((els) => els.map((e) => e.getAttribute('data-phase')))).toEqual(['queued', 'minted', 'vmUp', 'started', 'finished']);
    expect(await text(w, `#jobs-body tr[data-job-id="${waiting}"]`)).toContain('minipc');
    await expect.poll(() => text(w, '#pools-body tr[data-pool="build"] [data-field="waiting"]')).toBe('0');
    expect(await inPage(w.page, 'window.__sameDocument')).toBe('still-here');
    expect(w.navigations.length).toBe(navigations);
    expect(w.problems()).toEqual([]);
  });

  test('a refused fork pull request shows where it was refused and why', async () => {
    const [fork] = await queue({ repo: 'acme/app', event: 'pull_request', headBranch: 'patch-1', headRepository: 'mallory/app', jobs: [{ name: 'pwn', labels: ['self-hosted', 'build'], steps: ['echo PWNED'] }] });
    // A host asking for its runner is refused too, if the vetter has not got there first.
    await runOnHost(control.url, BUILD, 'build', fork!);
    await expect.poll(async () => (await api<JobDetail>(`/api/v1/jobs/${fork}`)).body.refusal?.why, { timeout: 10_000 }).toBe('fork-pr');
    const { refusal } = (await api<JobDetail>(`/api/v1/jobs/${fork}`)).body;
    const row = w.page.locator(`#refusals-body tr[data-job-id="${fork}"]`);
    await expect.poll(() => row.count()).toBe(1);
    expect(await text(w, `#refusals-body tr[data-job-id="${fork}"] [data-field="why"]`)).toBe('fork-pr');
    expect(await text(w, `#refusals-body tr[data-job-id="${fork}"] [data-field="where"]`)).toBe(WHERE[refusal!.where]);
    expect(['vet', 'mint', 'start']).toContain(refusal!.where);
    await expect.poll(() => jobRow(w, fork!).getAttribute('data-result')).toBe('refused');
    expect(sim.job(fork!).output).not.toContain('PWNED');
  });

  test('a job named like markup shows as text: no element made, no script run', async () => {
    const [id] = await queue({ repo: 'acme/app', workflowName: XSS, jobs: [{ name: XSS, labels: ['self-hosted', 'build', XSS], steps: ['true'] }] });
    const name = jobRow(w, id!).locator('button.job-name');
    await expect.poll(() => name.textContent()).toBe(XSS);
    expect(await name.innerHTML()).toBe('&lt;img src=x onerror=alert(1)&gt;');
    await name.click();
    await expect.poll(() => text(w, '#job-detail h2')).toBe(XSS);
    expect(await w.page.locator('img').count()).toBe(0);
    await w.page.keyboard.press('Escape');
    await expect.poll(() => w.page.locator('#job-detail[open]').count()).toBe(0);
    expect(w.dialogs).toEqual([]);
    expect(w.problems()).toEqual([]);
  });

  test('a job\'s detail: each phase with its time, the result, a failed VM\'s console tail, the egress log', async () => {
    const [ok, bad] = await queue({ repo: 'acme/app', workflowName: 'CI', jobs: [{ name: 'fetch', labels: ['self-hosted', 'build'], steps: ['true'] }, { name: 'boom', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    const egress = { dns: { names: [{ name: 'registry.npmjs.org', count: 3, allowed: 3, denied: 0, failed: 0, firstAt: Date.now(), lastAt: Date.now(), types: ['A'], answers: ['104.16.0.35'] }, { name: 'nas.home.arpa', count: 1, allowed: 0, denied: 1, failed: 0, firstAt: Date.now(), lastAt: Date.now(), types: ['A'], answers: [] }], queries: 4, overflow: 0 } };
    await runJob(ok!, { egress });
    // The other's VM dies before its runner starts: the agent reports it lost, with the console's end.
    const minted = await mint(bad!);
    await report(bad!, { kind: 'vm-up', vmId: `vm-${bad}`, runnerName: minted.runnerName });
    await report(bad!, { kind: 'vm-ended', end: 'lost', vmId: `vm-${bad}`, runnerName: minted.runnerName, vmMs: 900, exitCode: null, reason: 'qemu exited', consoleTail: `Kernel panic - not syncing: ${XSS}\n` });
    await expect.poll(() => jobRow(w, ok!).getAttribute('data-result'), { timeout: 15_000 }).toBe('succeeded');
    await jobRow(w, ok!).locator('button.job-name').click();
    await expect.poll(() => text(w, '#job-detail h2')).toBe('fetch');
    const steps = await w.page.locator('#job-detail .steps li.reached').evaluateAll((els) => els.map((e) => e.getAttribute('data-phase')));
    expect(steps).toEqual(['queued', 'minted', 'vmUp', 'started', 'finished']);
    expect(await text(w, '#job-detail .egress')).toContain('registry.npmjs.org');
    expect(await w.page.locator('#job-detail .egress tr.denied').textContent()).toContain('nas.home.arpa');
    await w.page.locator('#job-detail-close').click();

    await jobRow(w, bad!).locator('button.job-name').click();
    await expect.poll(() => text(w, '#job-detail pre.console')).toContain(`Kernel panic - not syncing: ${XSS}`);
    expect(await text(w, '#job-detail .vm-end')).toContain('lost');
    expect(await w.page.locator('img').count()).toBe(0);
    await screenshot(w.page, 'dashboard-job-detail');
    await w.page.keyboard.press('Escape');
    // Leave nothing queued in acme/app: the next runner minted there would be handed it (GitHub gives the oldest).
    sim.cancelJob(bad!);
    for (const r of sim.runners()) if (r.status !== 'deleted' && r.name === minted.runnerName) sim.deleteRunner(r.id);
    expect(w.problems()).toEqual([]);
  });

  test('drain stops the host taking jobs (the mint refuses it), undrain resumes it', async () => {
    const host = w.page.locator('#hosts-body tr[data-host="minipc"]');
    await host.locator('button[data-action="drain"]').click();
    await w.page.locator('#confirm[open]').waitFor();
    await w.page.locator('#confirm-reason').fill('new disk');
    await w.page.locator('#confirm-ok').click();
    await expect.poll(() => text(w, '#notice')).toMatch(/minipc/);
    await expect.poll(() => host.locator('.host-state').textContent()).toContain('drained');

    const [id] = await queue({ repo: 'acme/app', jobs: [{ name: 'after-drain', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    const refused = await runOnHost(control.url, BUILD, 'build', id!);
    expect(refused).toMatchObject({ status: 403, body: { reason: 'host-drained' } });

    await host.locator('button[data-action="undrain"]').click();
    await w.page.locator('#confirm-ok').click();
    await expect.poll(() => host.locator('button[data-action="drain"]').count()).toBe(1);
    expect(await host.locator('.host-state').textContent()).not.toContain('drained');
    await runJob(id!);
    await expect.poll(() => jobRow(w, id!).getAttribute('data-result'), { timeout: 15_000 }).toBe('succeeded');
    expect(w.problems()).toEqual([]);
  });

  test('cancel a waiting job and retry a failed one, from the job\'s detail', async () => {
    const [waiting] = await queue({ repo: 'acme/app', jobs: [{ name: 'to-cancel', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    await jobRow(w, waiting!).locator('button.job-name').click();
    await w.page.locator('#job-detail button[data-action="cancel"]').click();
    await w.page.locator('#confirm-ok').click();
    await expect.poll(() => text(w, '#notice')).toMatch(/cancel/i);
    await expect.poll(() => sim.job(waiting!).conclusion).toBe('cancelled');
    await expect.poll(() => jobRow(w, waiting!).getAttribute('data-result')).toBe('cancelled');
    await w.page.keyboard.press('Escape');

    const [failing] = await queue({ repo: 'acme/app', jobs: [{ name: 'flaky', labels: ['self-hosted', 'build'], steps: ['exit 3'] }] });
    await runJob(failing!);
    await expect.poll(() => jobRow(w, failing!).getAttribute('data-result'), { timeout: 15_000 }).toBe('failed');
    await jobRow(w, failing!).locator('button.job-name').click();
    await w.page.locator('#job-detail button[data-action="retry"]').click();
    await w.page.locator('#confirm-ok').click();
    await expect.poll(() => text(w, '#notice')).toMatch(/re-?run|retr|requeued/i);
    await w.page.keyboard.press('Escape');
    expect(w.problems()).toEqual([]);
  });

  test('the nightly batch: progress, makespan and slot utilisation as a chart', async () => {
    const ids = await queue({ repo: 'acme/nightly', event: 'schedule', workflowName: 'nightly', jobs: ['a', 'b', 'c'].map((n) => ({ name: `nightly-${n}`, labels: ['self-hosted', 'build'], steps: ['true'] })) });
    for (const id of ids) await runJob(id);
    await expect.poll(() => text(w, '#batch-body [data-field="progress"]'), { timeout: 15_000 }).toBe('3 / 3');
    const b = (await overview()).batch!;
    expect(b).toMatchObject({ total: 3, done: 3, failed: 0 });
    expect(b.utilisation.length).toBeGreaterThan(0);
    expect(await text(w, '#batch-body [data-field="makespan"]')).not.toBe('—');
    await expect.poll(() => w.page.locator('#batch-body .chart canvas').count()).toBeGreaterThan(0);
    expect(await text(w, '#savings-body [data-field="jobs"]')).toBe(String((await overview()).savings.jobs));
    await screenshot(w.page, 'dashboard-laptop');
    if (process.env.HANGAR_UPDATE_DOCS) copyFileSync(await screenshot(w.page, 'dashboard'), new URL('../../docs/dashboard.png', import.meta.url));
    expect(w.problems()).toEqual([]);
  });

  test('on a phone (390×844): every section there, nothing wider than the screen', async () => {
    const p = await watched({ mobile: true });
    await login(p.page, dash, OPERATOR_TOKEN);
    await expect.poll(() => p.page.locator('#jobs-body tr[data-job-id]').count()).toBeGreaterThan(3);
    for (const s of ['hosts', 'pools', 'jobs', 'refusals', 'batch', 'savings']) expect(await p.page.locator(`#${s}-body`).isVisible(), s).toBe(true);
    const { scroll, inner } = await inPage<{ scroll: number; inner: number }>(p.page, '({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth })');
    expect(scroll).toBeLessThanOrEqual(inner);
    // A row is a card: its cells labelled with their column.
    expect(await p.page.locator('#jobs-body td[data-label="Result"]').first().isVisible()).toBe(true);
    await screenshot(p.page, 'dashboard-phone');
    expect(p.problems()).toEqual([]);
  });

  test('with a keyboard: Tab reaches a job, Enter opens its detail, Escape returns to it; focus is visible', async () => {
    const p = await watched();
    await login(p.page, dash, OPERATOR_TOKEN);
    await expect.poll(() => p.page.locator('#jobs-body button.job-name').count()).toBeGreaterThan(0);
    let focused = '';
    for (let i = 0; i < 80 && !focused.startsWith('job-'); i++) {
      await p.page.keyboard.press('Tab');
      focused = await focusKey(p.page);
    }
    expect(focused).toMatch(/^job-\d+$/);
    const outline = await inPage(p.page, 'getComputedStyle(document.activeElement).outlineStyle');
    expect(outline).not.toBe('none');
    const name = await inPage<string>(p.page, 'document.activeElement.textContent');
    await p.page.keyboard.press('Enter');
    await expect.poll(() => text(p, '#job-detail h2')).toBe(name);
    expect(await inPage(p.page, `document.getElementById('job-detail').contains(document.activeElement)`)).toBe(true);
    await p.page.keyboard.press('Escape');
    await expect.poll(() => p.page.locator('#job-detail[open]').count()).toBe(0);
    expect(await focusKey(p.page)).toBe(focused);
    expect(p.problems()).toEqual([]);
  });

  test('the page\'s files: content types, the strict CSP, nothing inline', async () => {
    const page = await fetch(new URL('/', dash), { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` }, redirect: 'manual' });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await page.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/); // every script is a file
    expect(html).not.toMatch(/<style|\sstyle=|\son\w+=/);
    expect(html).not.toMatch(/https?:\/\//); // no CDN, no web font
    for (const [path, type] of [['/assets/main.js', 'text/javascript; charset=utf-8'], ['/assets/style.css', 'text/css; charset=utf-8'], ['/vendor/uplot/uPlot.esm.js', 'text/javascript; charset=utf-8'], ['/vendor/uplot/uPlot.min.css', 'text/css; charset=utf-8']]) {
      const r = await fetch(new URL(path!, dash));
      expect(r.status, path).toBe(200);
      expect(r.headers.get('content-type'), path).toBe(type);
      expect(r.headers.get('content-security-policy'), path).toBe(csp);
      const again = await fetch(new URL(path!, dash), { headers: { 'if-none-match': r.headers.get('etag')! } });
      expect(again.status, path).toBe(304);
    }
    expect((await fetch(new URL('/assets/..%2Fpage-routes.ts', dash))).status).toBe(404);
    expect((await fetch(new URL('/vendor/uplot/package.json', dash))).status).toBe(404);
  });
});
