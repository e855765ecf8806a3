import { copyFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { JobDetail, Overview } from '../../src/dashboard/api-types.js';
import { WHERE } from '../../src/dashboard/page/format.js';
import { inPage, launchBrowser, login, openPage, screenshot, type WatchedPage } from '../helpers/browser.js';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { expectPageBuilt } from '../helpers/page-build.js';
import { testPrefix } from '../helpers/redis.js';

/**
 * The dashboard in Debian's Chromium against a whole fleet (src/main/local-fleet.ts: real Redis,
 * the sim as GitHub, `hangar control`, `hangar agent`, QEMU microVMs): every figure on the page
 * comes from jobs that ran through VMs, webhooks the sim delivered and the agent's own heartbeats
 * and reports. test/integration/dashboard-page.test.ts drives the same page with no agent (the
 * phone, the keyboard, cancel and retry, a failed VM's console); this file is the real thing.
 *
 * The dashboard listens inside the fleet's build-host namespace; the fleet bridges it to a unix
 * socket, and a TCP listener on 127.0.0.1 here pipes the browser to that socket.
 */
const XSS = '<img src=x onerror=alert(1)>';

let fleet: Fleet;
let proxy: Server & { open: Set<Socket> };
let dash: string;
let browser: Browser;
let w: WatchedPage;
const pages: WatchedPage[] = [];

interface SimJob { id: number; status: string; conclusion: string | null; output?: string; runnerName?: string | null }
const simJob = (id: number) => fleet.api<SimJob>('GET', `/_sim/jobs/${id}`);
const createRun = (repo: string, jobs: { name: string; labels: string[]; steps: string[] }[], extra: Record<string, unknown> = {}) =>
  fleet.api<{ runId: number; jobs: { id: number }[] }>('POST', '/_sim/runs', { repo, ...extra, jobs }).then((r) => r.jobs.map((j) => j.id));
const BUILD_LABELS = ['self-hosted', 'build'];

const api = async <T>(path: string, init: RequestInit = {}): Promise<{ status: number; body: T }> => {
  const r = await fetch(new URL(path, dash), { ...init, headers: { authorization: `Bearer ${fleet.operatorToken}`, ...(init.headers ?? {}) } });
  return { status: r.status, body: (await r.json().catch(() => null)) as T };
};
const overview = async (): Promise<Overview> => (await api<Overview>('/api/v1/overview')).body;
const jobRow = (p: WatchedPage, id: number) => p.page.locator(`#jobs-body tr[data-job-id="${id}"]`);
const text = async (p: WatchedPage, selector: string): Promise<string> =>
  ((await p.page.locator(selector).first().textContent({ timeout: 2000 }).catch(() => '')) ?? '').replace(/\s+/g, ' ').trim();
const allCompleted = async (ids: number[]) => (await Promise.all(ids.map(simJob))).every((j) => j.status === 'completed');

/** 127.0.0.1:PORT here → the unix socket the fleet bridges to the dashboard's listener in its namespace. */
async function bridgeToSocket(socket: string): Promise<Server & { open: Set<Socket> }> {
  const open = new Set<Socket>();
  const server = createServer((c) => {
    const s = createConnection(socket);
    open.add(c);
    c.on('close', () => open.delete(c));
    c.pipe(s).pipe(c);
    const end = () => { c.destroy(); s.destroy(); };
    c.on('error', end);
    s.on('error', end);
    c.on('close', end);
    s.on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(server, { open });
}

/** Records every data-result each job row takes in the open page (a MutationObserver), as `id:result` in order. */
const watchResults = (p: WatchedPage) => inPage(p.page, `(() => {
  window.__results = [];
  const seen = (tr) => { const r = tr.getAttribute('data-result'); const id = tr.getAttribute('data-job-id'); if (id) window.__results.push(id + ':' + r); };
  document.querySelectorAll('#jobs-body tr[data-job-id]').forEach(seen);
  new MutationObserver((ms) => { for (const m of ms) {
    if (m.type === 'attributes' && m.target.matches?.('tr[data-job-id]')) seen(m.target);
    for (const n of m.addedNodes ?? []) if (n.nodeType === 1) { if (n.matches('tr[data-job-id]')) seen(n); n.querySelectorAll?.('tr[data-job-id]').forEach(seen); }
  } }).observe(document.getElementById('jobs-body') ?? document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-result'] });
  return true;
})()`);
const resultsSeen = async (p: WatchedPage, id: number): Promise<string[]> =>
  (await inPage<string[]>(p.page, 'window.__results ?? []')).filter((x) => x.startsWith(`${id}:`)).map((x) => x.slice(String(id).length + 1));

beforeAll(async () => {
  expectPageBuilt();
  fleet = await startFleet({ prefix: testPrefix(), slots: 2, timeoutMinutes: 2 });
  for (const [owner, name, forkOf] of [['acme', 'app'], ['acme', 'nightly'], ['mallory', 'app', 'acme/app']] as const) {
    await fleet.api('POST', '/_sim/repos', { owner, name, visibility: 'private', ...(forkOf ? { forkOf } : {}) });
  }
  await fleet.startAgent();
  proxy = await bridgeToSocket(fleet.sockets.dashboard);
  const addr = proxy.address();
  if (addr === null || typeof addr === 'string') throw new Error('the dashboard bridge has no TCP address');
  dash = `http://127.0.0.1:${addr.port}`;
  browser = await launchBrowser();
}, 300_000);

afterAll(async () => {
  for (const p of pages) await p.close().catch(() => undefined);
  await browser?.close();
  // Keep-alive connections (the test's own fetch) would hold close() open until they idle out.
  for (const c of proxy?.open ?? []) c.destroy();
  await new Promise((resolve) => (proxy ? proxy.close(resolve) : resolve(undefined)));
  await fleet?.close();
}, 120_000);

describe('the dashboard of a fleet running real jobs through microVMs', () => {
  test('without the operator token the page sends the browser to the login and the API answers 401', async () => {
    const p = await openPage(browser);
    pages.push(p);
    await p.page.goto(new URL('/', dash).href);
    expect(new URL(p.page.url()).pathname).toBe('/login');
    expect(await p.page.locator('main[data-ready]').count()).toBe(0);
    for (const path of ['/api/v1/overview', '/api/v1/session', '/api/v1/stream']) {
      expect((await fetch(new URL(path, dash))).status, path).toBe(401);
      // The host's token is not the operator's.
      expect((await fetch(new URL(path, dash), { headers: { authorization: `Bearer ${fleet.hostToken}` } })).status, path).toBe(401);
    }
    expect((await fetch(new URL('/api/v1/hosts/minipc/drain', dash), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(401);
  });

  test('the nightly batch runs through VMs while the page is open: each job moves from queued to done without a reload, a job named like markup is text', async () => {
    w = await openPage(browser);
    pages.push(w);
    expect(new URL(await login(w.page, dash, fleet.operatorToken)).pathname).toBe('/');
    await expect.poll(() => text(w, '#hosts-body tr[data-host="minipc"] .host-state'), { timeout: 15_000 }).toMatch(/^up/);
    await watchResults(w);
    await inPage(w.page, `window.__sameDocument = 'still-here'`);
    const navigations = w.navigations.length;

    const ids = await createRun('acme/nightly', ['compile', 'boot', XSS].map((name, i) => ({ name, labels: BUILD_LABELS, steps: [`echo NIGHTLY-${i}`] })), { event: 'schedule', workflowName: 'nightly', headBranch: 'main' });
    await expect.poll(() => allCompleted(ids), { timeout: 240_000, interval: 1000 }).toBe(true);
    for (const id of ids) {
      expect(await simJob(id)).toMatchObject({ status: 'completed', conclusion: 'success' });
      await expect.poll(() => jobRow(w, id).getAttribute('data-result'), { timeout: 15_000 }).toBe('succeeded');
      const seen = await resultsSeen(w, id);
      // It showed up before it was done (waiting or running), and ended done: pushed over SSE, not reloaded.
      expect(seen.length, `${id}: ${seen.join(' → ')}`).toBeGreaterThan(1);
      expect(seen.slice(0, -1).some((r) => r === 'waiting' || r === 'running'), `${id}: ${seen.join(' → ')}`).toBe(true);
      expect(seen.at(-1)).toBe('succeeded');
      expect(await jobRow(w, id).locator('.phases li').evaluateAll((els) => els.map((e) => e.getAttribute('data-phase')))).toEqual(['queued', 'minted', 'vmUp', 'started', 'finished']);
      expect(await jobRow(w, id).textContent()).toContain('minipc');
    }
    expect(await inPage(w.page, 'window.__sameDocument')).toBe('still-here');
    expect(w.navigations.length).toBe(navigations);

    // The markup job: its name is text, no element was made from it, nothing ran.
    const name = jobRow(w, ids[2]!).locator('button.job-name');
    expect(await name.textContent()).toBe(XSS);
    expect(await name.innerHTML()).toBe('&lt;img src=x onerror=alert(1)&gt;');
    await name.click();
    await expect.poll(() => text(w, '#job-detail h2')).toBe(XSS);
    const detail = (await api<JobDetail>(`/api/v1/jobs/${ids[2]}`)).body;
    expect(detail.host).toBe('minipc');
    expect(detail.vm).toBeTruthy();
    expect(detail.vmEnd?.outcome).toBe('ran');
    expect(await text(w, '#job-detail')).toContain(detail.vm!);
    await w.page.keyboard.press('Escape');
    expect(await w.page.locator('img').count()).toBe(0);
    expect(w.dialogs).toEqual([]);
    expect(w.problems()).toEqual([]);
  }, 300_000);

  test('every section shows what the fleet did: the host from its heartbeat, the pool, the batch, the savings', async () => {
    // Hosts: minipc up, from the agent's own heartbeat (every 5 s): its slots (none busy once its last VM is gone), driver and accelerator.
    await expect.poll(async () => (await overview()).hosts.find((h) => h.name === 'minipc')?.slots?.used, { timeout: 15_000 }).toBe(0);
    const o = await overview();
    const beat = JSON.parse((await fleet.redis().get(`${fleet.prefix}:host:minipc`))!) as { driver: string; accel: string; slots: number };
    const host = o.hosts.find((h) => h.name === 'minipc')!;
    expect(host).toMatchObject({ up: true, role: 'build', driver: beat.driver, accelerator: beat.accel, slots: { used: 0, total: 2 } });
    expect(beat.driver).toBe('qemu-microvm');
    const row = '#hosts-body tr[data-host="minipc"]';
    await expect.poll(() => text(w, `${row} .slots`)).toContain('0 / 2');
    expect(await text(w, row)).toContain('qemu-microvm');
    expect(await text(w, row)).toContain(beat.accel);
    // The slice's caps (180 % CPU quota, 2 GiB), as the agent measured its slice.
    expect(host.usage?.cpuQuotaCores).toBe(1.8);
    expect(await text(w, row)).toContain('of its 1.8 cores');

    // Pools: nothing waiting in build once the batch ran.
    expect(o.pools.find((p) => p.name === 'build')).toMatchObject({ waiting: 0 });
    expect(await text(w, '#pools-body tr[data-pool="build"] [data-field="waiting"]')).toBe('0');

    // The nightly batch: the schedule run, 3 of 3, a makespan, slot utilisation charted.
    expect(o.batch).toMatchObject({ total: 3, done: 3, failed: 0 });
    expect(o.batch!.makespanMs).toBeGreaterThan(0);
    expect(o.batch!.utilisation.length).toBeGreaterThan(0);
    expect(Math.max(...o.batch!.utilisation.map((u) => u.busy))).toBeLessThanOrEqual(2);
    await expect.poll(() => text(w, '#batch-body [data-field="progress"]')).toBe('3 / 3');
    expect(await text(w, '#batch-body [data-field="makespan"]')).not.toBe('—');
    await expect.poll(() => w.page.locator('#batch-body .chart canvas').count()).toBeGreaterThan(0);

    // Savings: the three jobs ran on Hangar, each billed as at least a whole minute.
    expect(o.savings.jobs).toBe(3);
    expect(o.savings.minutes).toBeGreaterThanOrEqual(3);
    await expect.poll(() => text(w, '#savings-body [data-field="jobs"]')).toBe('3');

    // No secret of the fleet's in anything the dashboard answered.
    const all = JSON.stringify(o) + (await w.page.content());
    for (const secret of [fleet.hostToken, fleet.operatorToken]) expect(all).not.toContain(secret);
    await inPage(w.page, 'document.activeElement?.blur()');
    await screenshot(w.page, 'dashboard-fleet');
    if (process.env.HANGAR_UPDATE_DOCS) copyFileSync(await screenshot(w.page, 'dashboard'), new URL('../../docs/dashboard.png', import.meta.url));
    expect(w.problems()).toEqual([]);
  }, 60_000);

  test('a fork\'s pull request is refused and the page says where and why; its step never ran', async () => {
    const [fork] = await createRun('acme/app', [{ name: 'pwn', labels: BUILD_LABELS, steps: ['echo PWNED'] }], { event: 'pull_request', headBranch: 'patch-1', headRepository: 'mallory/app' });
    const row = w.page.locator(`#refusals-body tr[data-job-id="${fork}"]`);
    await expect.poll(() => row.count(), { timeout: 30_000 }).toBe(1);
    const { refusal } = (await api<JobDetail>(`/api/v1/jobs/${fork}`)).body;
    expect(refusal?.why).toBe('fork-pr');
    expect(await text(w, `#refusals-body tr[data-job-id="${fork}"] [data-field="why"]`)).toBe('fork-pr');
    expect(await text(w, `#refusals-body tr[data-job-id="${fork}"] [data-field="where"]`)).toBe(WHERE[refusal!.where]);
    await expect.poll(() => jobRow(w, fork!).getAttribute('data-result')).toBe('refused');
    // Refused runs are cancelled at GitHub (policy.cancelRefusedRuns); no runner ever ran it.
    await expect.poll(async () => (await simJob(fork!)).status, { timeout: 30_000 }).toBe('completed');
    expect((await simJob(fork!)).output ?? '').not.toContain('PWNED');
    expect(w.problems()).toEqual([]);
  }, 60_000);

  test('drain from the page: the agent takes no new job (it waits, and the page says why); undrain: it runs', async () => {
    const host = w.page.locator('#hosts-body tr[data-host="minipc"]');
    await host.locator('button[data-action="drain"]').click();
    await w.page.locator('#confirm[open]').waitFor();
    await w.page.locator('#confirm-reason').fill('new disk');
    await w.page.locator('#confirm-ok').click();
    await expect.poll(() => host.locator('.host-state').textContent()).toContain('drained');
    // The agent learns it from its next heartbeat's answer, and says so in its own next one.
    const draining = async () => (JSON.parse((await fleet.redis().get(`${fleet.prefix}:host:minipc`)) ?? '{}') as { draining?: boolean }).draining === true;
    await expect.poll(draining, { timeout: 15_000, interval: 500 }).toBe(true);

    const [id] = await createRun('acme/app', [{ name: 'after-drain', labels: BUILD_LABELS, steps: ['echo AFTER-DRAIN'] }]);
    await expect.poll(() => jobRow(w, id!).getAttribute('data-result'), { timeout: 15_000 }).toBe('waiting');
    // An agent taking jobs fetches a new one from its queue at once; this one, told it is drained
    // (its heartbeat says so), leaves it: after 5 s still queued at GitHub, no VM for it, the pool shows it waiting.
    await new Promise((r) => setTimeout(r, 5_000));
    expect(await simJob(id!)).toMatchObject({ status: 'queued' });
    expect(await fleet.taps()).toEqual([]);
    expect((await overview()).pools.find((p) => p.name === 'build')).toMatchObject({ waiting: 1 });
    expect(await text(w, '#pools-body tr[data-pool="build"] [data-field="waiting"]')).toBe('1');
    expect(await text(w, '#pools-body tr[data-pool="build"] .oldest')).toContain(`#${id}`);
    await screenshot(w.page, 'dashboard-fleet-drained');

    await host.locator('button[data-action="undrain"]').click();
    await w.page.locator('#confirm-ok').click();
    await expect.poll(() => host.locator('button[data-action="drain"]').count()).toBe(1);
    await expect.poll(async () => (await simJob(id!)).status, { timeout: 120_000, interval: 1000 }).toBe('completed');
    expect(await simJob(id!)).toMatchObject({ conclusion: 'success' });
    await expect.poll(() => jobRow(w, id!).getAttribute('data-result'), { timeout: 15_000 }).toBe('succeeded');
    await expect.poll(draining, { timeout: 15_000, interval: 500 }).toBe(false);
    expect(w.problems()).toEqual([]);
  }, 180_000);
});
