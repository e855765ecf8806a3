import { SimError, notFound } from './errors.js';
import { JobLocks } from './job-locks.js';
import { SimRunnerGroups } from './runner-groups.js';

const DOCS_CANCEL_RUN = 'https://docs.github.com/rest/actions/workflow-runs#cancel-a-workflow-run';
const DOCS_RERUN_JOB = 'https://docs.github.com/rest/actions/workflow-runs#re-run-a-job-from-a-workflow-run';
import { Ids, hex, isoNow, nodeId, type Job, type JobConclusion, type Owner, type Repo, type Run, type RunEvent, type Runner, type RunnerScope, type Visibility } from './model.js';

export type JobAction = 'queued' | 'in_progress' | 'completed';

export interface CreateRepoInput {
  owner: string;
  name: string;
  visibility: Visibility;
  /** `owner/name` of the repository this one forks. */
  forkOf?: string | undefined;
}

export interface CreateRunInput {
  repo: string;
  event?: RunEvent | undefined;
  headBranch?: string | undefined;
  /** `owner/name` of the head repository; a fork's full name makes a fork pull request. */
  headRepository?: string | undefined;
  workflowName?: string | undefined;
  jobs: { name: string; labels: string[]; steps: string[] }[];
}

export interface CreateRunnerInput {
  scope: RunnerScope;
  repo?: Repo;
  org?: string;
  name: string;
  labels: string[];
  groupId: number;
  workFolder: string;
}

/** The outcome of a runner asking for work: a job, nothing yet, or "you already had yours". */
export type Claim = { kind: 'job'; job: Job } | { kind: 'none' } | { kind: 'spent' };

const lower = (s: string) => s.toLowerCase();
const MAX_OUTPUT = 1024 * 1024;
const STEP_MARK = /^##\[sim\] step (\d+) exit (\d+)$/gm;

/**
 * The sim's GitHub state and its rules: runner names unique per scope, GitHub's job assignment
 * rule, one job per JIT runner. Every job transition is reported to `onJob` (the webhook emitter).
 */
export class SimStore {
  readonly ids = new Ids();
  private readonly owners = new Map<string, Owner>();
  private readonly repos = new Map<string, Repo>();
  private readonly runs = new Map<number, Run>();
  private readonly jobs = new Map<number, Job>();
  private readonly runners = new Map<number, Runner>();
  private readonly runNumbers = new Map<number, number>();
  /** Organizations' runner groups (GET /orgs/{org}/actions/runner-groups). */
  readonly groups = new SimRunnerGroups(this.ids, (login) => this.orgExists(login), (fullName) => this.repo(fullName));
  /** The lock each running job's runner holds and renews (POST /_runner/jobs/:id/renew). */
  private readonly locks = new JobLocks();

  constructor(private readonly onJob: (action: JobAction, job: Job) => void) {}

  private owner(login: string): Owner {
    let o = this.owners.get(lower(login));
    if (!o) {
      const id = this.ids.take('owner');
      o = { login, id, nodeId: nodeId('Organization', id), type: 'Organization' };
      this.owners.set(lower(login), o);
    }
    return o;
  }

  orgExists(login: string): Owner | undefined {
    return this.owners.get(lower(login));
  }

  repo(fullName: string): Repo | undefined {
    return this.repos.get(lower(fullName));
  }

  /** Every repository, oldest first (the one installation reaches them all). */
  allRepos(): Repo[] {
    return [...this.repos.values()];
  }

  /** GitHub answers 404 for a repository the installation cannot see, whatever the reason. */
  requireRepo(owner: string, name: string): Repo {
    const r = this.repo(`${owner}/${name}`);
    if (!r) throw notFound();
    return r;
  }

  createRepo(input: CreateRepoInput): Repo {
    const fullName = `${input.owner}/${input.name}`;
    if (this.repo(fullName)) throw new SimError(422, 'Repository creation failed.', undefined, ['name already exists on this account']);
    const parent = input.forkOf ? this.repo(input.forkOf) : null;
    if (parent === undefined) throw new SimError(422, `forkOf: repository ${input.forkOf} does not exist`);
    const id = this.ids.take('repo');
    const repo: Repo = {
      id, nodeId: nodeId('Repository', id), owner: this.owner(input.owner), name: input.name, fullName,
      visibility: input.visibility, parent, createdAt: isoNow(), defaultBranch: 'main',
    };
    this.repos.set(lower(fullName), repo);
    return repo;
  }

  setVisibility(fullName: string, visibility: Visibility): Repo {
    const r = this.repo(fullName);
    if (!r) throw notFound();
    r.visibility = visibility;
    return r;
  }

  createRun(input: CreateRunInput): { run: Run; jobs: Job[] } {
    const repo = this.repo(input.repo);
    if (!repo) throw new SimError(404, `repository ${input.repo} does not exist: POST /_sim/repos first`);
    const headRepo = input.headRepository ? (this.repo(input.headRepository) ?? this.createFork(input.headRepository, repo)) : repo;
    const id = this.ids.take('run');
    const runNumber = (this.runNumbers.get(repo.id) ?? 0) + 1;
    this.runNumbers.set(repo.id, runNumber);
    const now = isoNow();
    const run: Run = {
      id, nodeId: nodeId('WorkflowRun', id), repo, headRepo, event: input.event ?? 'push',
      headBranch: input.headBranch ?? 'main', headSha: hex(20), workflowName: input.workflowName ?? 'CI',
      workflowId: this.ids.take('workflow'), path: '.github/workflows/ci.yml', runNumber, runAttempt: 1,
      createdAt: now, updatedAt: now, jobIds: [],
    };
    this.runs.set(id, run);
    const jobs = input.jobs.map((j) => this.addJob(run, j));
    for (const job of jobs) this.onJob('queued', job);
    return { run, jobs };
  }

  /** A fork PR's head repository that the test did not create: a fork with the base's visibility. */
  private createFork(fullName: string, base: Repo): Repo {
    const [owner, name] = fullName.split('/');
    if (!owner || !name) throw new SimError(422, `headRepository: expected owner/name, got ${fullName}`);
    return this.createRepo({ owner, name, visibility: base.visibility, forkOf: base.fullName });
  }

  private addJob(run: Run, spec: CreateRunInput['jobs'][number]): Job {
    const id = this.ids.take('job');
    const job: Job = {
      id, nodeId: nodeId('CheckRun', id), run, runAttempt: run.runAttempt, name: spec.name, labels: [...spec.labels], steps: [...spec.steps],
      status: 'queued', conclusion: null, createdAt: run.createdAt, startedAt: null, completedAt: null,
      runnerId: null, runnerName: null, runnerGroupId: null, runnerGroupName: null, exitCode: null, output: '', stepExits: [],
    };
    this.jobs.set(id, job);
    run.jobIds.push(id);
    return job;
  }

  run(id: number): Run | undefined {
    return this.runs.get(id);
  }

  runsOf(repo: Repo): Run[] {
    return [...this.runs.values()].filter((r) => r.repo === repo).reverse();
  }

  job(id: number): Job | undefined {
    return this.jobs.get(id);
  }

  jobsOf(run: Run): Job[] {
    return run.jobIds.map((id) => this.jobs.get(id)).filter((j): j is Job => j !== undefined);
  }

  cancelJob(id: number): Job {
    const job = this.jobs.get(id);
    if (!job) throw notFound();
    if (job.status !== 'completed') {
      if (job.runnerId !== null) {
        const runner = this.runners.get(job.runnerId);
        if (runner) this.retire(runner);
      }
      this.complete(job, 'cancelled');
    }
    return job;
  }

  /**
   * `POST .../runs/{id}/cancel`: every job not yet completed is cancelled, queued or running
   * (GitHub tells a running job's runner; here its runner is retired and its later result refused).
   * A run whose jobs are all completed is GitHub's 409.
   */
  cancelRun(run: Run): Job[] {
    const open = this.jobsOf(run).filter((j) => j.status !== 'completed');
    if (open.length === 0) throw new SimError(409, 'Cannot cancel a workflow run that is completed.', DOCS_CANCEL_RUN);
    return open.map((j) => this.cancelJob(j.id));
  }

  /**
   * `POST .../actions/jobs/{id}/rerun`: the run gets a new attempt in which this job runs again as
   * a new workflow job (queued, with its own id); the run's other jobs keep their results. GitHub
   * re-runs only jobs of a completed run (403 otherwise; the sim has no job dependencies, so no
   * dependent job is re-run with it).
   */
  rerunJob(job: Job): Job {
    const run = job.run;
    if (this.jobsOf(run).some((j) => j.status !== 'completed')) throw new SimError(403, 'This workflow run is not completed.', DOCS_RERUN_JOB);
    if (!run.jobIds.includes(job.id)) throw new SimError(403, 'This job is not of the latest attempt of its run.', DOCS_RERUN_JOB);
    run.runAttempt += 1;
    run.createdAt = run.updatedAt = isoNow();
    const fresh = this.addJob(run, { name: job.name, labels: job.labels, steps: job.steps });
    run.jobIds = run.jobIds.filter((id) => id !== job.id);
    for (const other of this.jobsOf(run)) if (other !== fresh) other.runAttempt = run.runAttempt;
    this.onJob('queued', fresh);
    return fresh;
  }

  private complete(job: Job, conclusion: JobConclusion): void {
    this.locks.release(job.id);
    job.status = 'completed';
    job.conclusion = conclusion;
    job.completedAt = isoNow();
    job.startedAt ??= job.completedAt;
    job.run.updatedAt = job.completedAt;
    this.onJob('completed', job);
  }

  /** Live runners in a scope; name filter is exact, as GitHub's `?name=`. */
  listRunners(scope: RunnerScope, where: string, name?: string): Runner[] {
    return [...this.runners.values()].filter(
      (r) => r.deletedAt === null && r.scope === scope && lower(scope === 'repo' ? (r.repo?.fullName ?? '') : r.org) === lower(where) && (name === undefined || r.name === name),
    );
  }

  /** Every runner ever registered, deleted ones included (the control API shows each one vanish). */
  allRunners(): Runner[] {
    return [...this.runners.values()];
  }

  runner(id: number): Runner | undefined {
    return this.runners.get(id);
  }

  createRunner(input: CreateRunnerInput): Runner {
    const where = input.scope === 'repo' ? (input.repo?.fullName ?? '') : (input.org ?? '');
    if (this.listRunners(input.scope, where, input.name).length > 0) {
      throw new SimError(409, `Already exists - A runner with the name ${input.name} already exists.`, 'https://docs.github.com/rest/actions/self-hosted-runners#create-configuration-for-a-just-in-time-runner-for-a-repository');
    }
    const id = this.ids.take('runner');
    const runner: Runner = {
      id, name: input.name, labels: [...input.labels], scope: input.scope, repo: input.repo ?? null,
      org: input.repo?.owner.login ?? input.org ?? '', groupId: input.groupId, workFolder: input.workFolder,
      status: 'offline', os: 'unknown', busy: false, createdAt: isoNow(), busySince: null, deletedAt: null, jobId: null,
      token: hex(20),
    };
    this.runners.set(id, runner);
    return runner;
  }

  /** The live runner holding `token`; with `retired`, a runner already gone from GitHub's API too. */
  runnerByToken(token: string, opts: { retired?: boolean } = {}): Runner | undefined {
    return [...this.runners.values()].find((r) => (opts.retired === true || r.deletedAt === null) && r.token === token);
  }

  /** GitHub's rule: the oldest queued job whose labels are all among the runner's (any case), in its scope. */
  claim(runner: Runner): Claim {
    runner.status = 'online';
    runner.os = 'Linux';
    if (runner.jobId !== null) return { kind: 'spent' };
    const have = new Set(runner.labels.map(lower));
    const job = [...this.jobs.values()].find(
      (j) => j.status === 'queued' && j.labels.every((l) => have.has(lower(l))) && this.inScope(runner, j.run.repo),
    );
    if (!job) return { kind: 'none' };
    const now = isoNow();
    const runnerGroupName = runner.scope === 'org' ? this.groups.nameOf(runner.org, runner.groupId) : runner.groupId === 1 ? 'Default' : `group-${runner.groupId}`;
    Object.assign(job, { status: 'in_progress', startedAt: now, runnerId: runner.id, runnerName: runner.name, runnerGroupId: runner.groupId, runnerGroupName });
    Object.assign(runner, { busy: true, busySince: now, jobId: job.id });
    this.locks.take(job.id, Date.now());
    job.run.updatedAt = now;
    this.onJob('in_progress', job);
    return { kind: 'job', job };
  }

  private inScope(runner: Runner, repo: Repo): boolean {
    return runner.scope === 'repo' ? runner.repo === repo : lower(repo.owner.login) === lower(runner.org);
  }

  /**
   * The runner reports its one job; the job completes and the ephemeral runner is removed.
   * A job cancelled while it ran is left as it is: the report is refused with 409.
   */
  finish(runner: Runner, jobId: number, exitCode: number, output: string): Job {
    const job = this.jobs.get(jobId);
    if (!job || runner.jobId !== jobId) throw new SimError(404, 'this runner was not assigned that job');
    const kept = output.length > MAX_OUTPUT ? output.slice(-MAX_OUTPUT) : output;
    if (job.status === 'completed' && job.conclusion === 'cancelled') {
      // GitHub keeps a cancelled job's log up to where it stopped; its result is not recorded.
      job.output = kept;
      this.retire(runner);
      throw new SimError(409, `job ${jobId} was cancelled; its result is not recorded`);
    }
    job.output = kept;
    job.exitCode = exitCode;
    job.stepExits = [...job.output.matchAll(STEP_MARK)].map((m) => Number(m[2]));
    this.retire(runner);
    if (job.status !== 'completed') this.complete(job, exitCode === 0 ? 'success' : 'failure');
    return job;
  }

  /**
   * The runner renews its lock on the job it runs; returns when the lock now runs out (ms).
   * 409 when the job is not this runner's or no longer running (completed, cancelled, lost).
   */
  renew(runner: Runner, jobId: number, timeoutMs: number, now = Date.now()): number {
    const job = this.jobs.get(jobId);
    if (!job || runner.jobId !== jobId || job.status !== 'in_progress' || !this.locks.renew(jobId, now)) {
      throw new SimError(409, `job ${jobId} is not running on this runner`);
    }
    return now + timeoutMs;
  }

  /**
   * Fails every running job whose runner stopped renewing its lock `timeoutMs` ago, as GitHub
   * does: the job concludes `failure` with GitHub's annotation in its log, the runner is gone.
   */
  loseExpired(timeoutMs: number, now = Date.now()): Job[] {
    const lost = this.locks.expired(now, timeoutMs).map((id) => this.jobs.get(id)).filter((j): j is Job => j?.status === 'in_progress');
    for (const job of lost) {
      const runner = job.runnerId === null ? undefined : this.runners.get(job.runnerId);
      if (runner) this.retire(runner);
      const note = `##[error]The self-hosted runner: ${job.runnerName ?? ''} lost communication with the server. Verify the machine is running and has a healthy network connection.\n`;
      job.output = `${job.output}${job.output === '' || job.output.endsWith('\n') ? '' : '\n'}${note}`.slice(-MAX_OUTPUT);
      this.complete(job, 'failure');
    }
    return lost;
  }

  /** DELETE of a runner: refused while it runs a job, as GitHub does. */
  deleteRunner(runner: Runner): void {
    if (runner.busy) {
      throw new SimError(422, `Bad request - Runner "${runner.name}" is still running a job"`, 'https://docs.github.com/rest/actions/self-hosted-runners#delete-a-self-hosted-runner-from-a-repository');
    }
    this.retire(runner);
  }

  private retire(runner: Runner): void {
    Object.assign(runner, { busy: false, status: 'offline', deletedAt: runner.deletedAt ?? isoNow() });
  }
}
