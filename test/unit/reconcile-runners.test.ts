import { describe, expect, test } from 'vitest';
import { decideRunner, planRunners, type RunnerFacts } from '../../src/domain/reconcile-runners.js';
import { isOurRunner, parseRunnerName } from '../../src/domain/mint-policy.js';

const NOW = 10_000_000;
const limits = { now: NOW, graceMs: 120_000, idleMs: 600_000 };
const ago = (s: number) => NOW - s * 1000;

function runner(o: Partial<RunnerFacts> = {}): RunnerFacts {
  return {
    runnerId: 7, name: 'hangar-minipc-42-1', scope: 'repo:acme/app', busy: false, status: 'offline', host: 'minipc', workflowJobId: 42,
    job: { phase: 'minted', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(30) }, claimedAt: ago(31), vmLive: false, ...o,
  };
}

describe('which runners reconcile deletes', () => {
  test.each<[string, Partial<RunnerFacts>, string | null]>([
    ['busy: never (it runs a job)', { busy: true, vmLive: false, job: null, claimedAt: null }, null],
    ['busy and idle-looking: never', { busy: true, vmLive: true, job: { phase: 'minted', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(9999) } }, null],
    ['young, no VM yet (booting)', {}, null],
    ['no VM, minted long ago', { job: { phase: 'minted', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(600) } }, 'delete-orphan'],
    ['no VM, job ran long ago (left behind)', { job: { phase: 'ran', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(3600) } }, 'delete-orphan'],
    ['no record, no claim, no VM', { job: null, claimedAt: null }, 'delete-orphan'],
    ['no record, claimed a moment ago', { job: null, claimedAt: ago(5) }, null],
    ['replaced by a newer runner, its own claim old', { job: { phase: 'minted', mintedRunner: 'hangar-spare-42-1', mintedAt: ago(5) }, claimedAt: ago(900) }, 'delete-orphan'],
    ['replaced, no claim of its host', { job: { phase: 'minted', mintedRunner: 'hangar-spare-42-1', mintedAt: ago(5) }, claimedAt: null }, 'delete-orphan'],
    ['live VM, waiting a short while', { vmLive: true, job: { phase: 'vm-up', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(60) } }, null],
    ['live VM, waiting past the idle limit', { vmLive: true, job: { phase: 'vm-up', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(601) } }, 'delete-idle'],
    ['live VM, minted past the idle limit, never up', { vmLive: true, job: { phase: 'minted', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(700) } }, 'delete-idle'],
    ['live VM, started long ago: the time cap governs, not idleness', { vmLive: true, job: { phase: 'started', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(9000) } }, null],
    ['live VM, its job cancelled on GitHub: idle now, whatever the idle limit', { vmLive: true, job: { phase: 'cancelled', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(30) } }, 'delete-idle'],
    ['live VM, its job given up on: idle now', { vmLive: true, job: { phase: 'failed', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(5) } }, 'delete-idle'],
    ['live VM, its job cancelled, but busy with another: never', { busy: true, vmLive: true, job: { phase: 'cancelled', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(30) } }, null],
    ['live VM, its job ran: the VM is ending on its own', { vmLive: true, job: { phase: 'ran', mintedRunner: 'hangar-minipc-42-1', mintedAt: ago(9000) } }, null],
    ['live VM of a replaced runner: left to its VM', { vmLive: true, job: { phase: 'vm-up', mintedRunner: 'hangar-spare-42-1', mintedAt: ago(9000) } }, null],
  ])('%s', (_name, o, want) => {
    expect(decideRunner(runner(o), limits)?.kind ?? null).toBe(want);
  });

  test('the plan keeps what it needs to act: id, scope, job, why', () => {
    const plan = planRunners([runner({ job: null, claimedAt: null }), runner({ busy: true, runnerId: 8 })], limits);
    expect(plan).toEqual([{ kind: 'delete-orphan', runnerId: 7, name: 'hangar-minipc-42-1', scope: 'repo:acme/app', workflowJobId: 42, why: 'no record of its job, no live VM' }]);
  });
});

describe('which runners are this installation\'s', () => {
  test.each<[string, { name: string; labels: string[] }, boolean]>([
    ['our name and label', { name: 'hangar-minipc-42-1', labels: ['self-hosted', 'build', 'hangar-id-abc123'] }, true],
    ['label in another case', { name: 'hangar-minipc-42-1', labels: ['HANGAR-ID-ABC123'] }, true],
    ['another installation\'s label', { name: 'hangar-minipc-42-1', labels: ['self-hosted', 'hangar-id-other'] }, false],
    ['our label, a name Hangar never makes', { name: 'ci-box-1', labels: ['hangar-id-abc123'] }, false],
    ['a Hangar-like name, no label (made by hand)', { name: 'hangar-minipc-42-1', labels: ['self-hosted'] }, false],
  ])('%s', (_name, r, want) => expect(isOurRunner(r, 'abc123')).toBe(want));

  test.each<[string, ReturnType<typeof parseRunnerName>]>([
    ['hangar-minipc-42-1', { host: 'minipc', workflowJobId: 42, runAttempt: 1 }],
    ['hangar-build-box-2-7-3', { host: 'build-box-2', workflowJobId: 7, runAttempt: 3 }],
    ['hangar-minipc-42', null],
    ['other-minipc-42-1', null],
  ])('name %s', (name, want) => expect(parseRunnerName(name)).toEqual(want));
});
