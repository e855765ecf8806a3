/**
 * ansible/ as its users meet it before running it: `ansible-playbook --syntax-check` and
 * `ansible-lint` (production profile) clean, and a lint that fails on a planted mistake (so
 * "clean" means something). Debian's ansible and ansible-lint (test/setup.sh); no root, no target.
 */
import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, test } from 'vitest';

const execFileP = promisify(execFile);
const ANSIBLE = new URL('../../ansible', import.meta.url).pathname;
const ENV = { ...process.env, ANSIBLE_NOCOLOR: '1', NO_COLOR: '1', ANSIBLE_FORCE_COLOR: '0' };
const scratch = mkdtempSync(join(tmpdir(), 'hangar-ansible-lint-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; out: string }> {
  try {
    const r = await execFileP(cmd, args, { cwd, env: ENV, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, out: `${r.stdout}${r.stderr}` };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

test('ansible-playbook --syntax-check: site.yml with the example inventory', async () => {
  const r = await run('ansible-playbook', ['--syntax-check', '-i', 'inventory.example.yml', 'site.yml'], ANSIBLE);
  expect(r.code, r.out).toBe(0);
  expect(r.out).toMatch(/playbook: site\.yml/);
});

test('ansible-lint: clean with the production profile', async () => {
  const r = await run('ansible-lint', ['--profile', 'production'], ANSIBLE);
  expect(r.code, r.out).toBe(0);
  expect(r.out).toMatch(/Passed with production profile: 0 failure\(s\), 0 warning\(s\)/);
}, 120_000);

test('ansible-lint notices a planted mistake (a command with no changed_when, a short module name)', async () => {
  const copy = join(scratch, 'ansible');
  cpSync(ANSIBLE, copy, { recursive: true, filter: (src) => !src.includes('/files/') });
  appendFileSync(join(copy, 'roles/common/tasks/system.yml'), '\n- name: Planted\n  command: /bin/true\n');
  const r = await run('ansible-lint', ['--profile', 'production'], copy);
  expect(r.code).not.toBe(0);
  expect(r.out).toMatch(/no-changed-when/);
  expect(r.out).toMatch(/fqcn/);
}, 120_000);
