/** The GitHub client's public surface. Import from here, not from the files behind it. */
export { createGitHubClient, type GitHubClient, type GitHubClientOptions } from './create-github-client.js';
export type { ThrottleOptions } from './create-octokit.js';
export { BUDGET_PRIORITIES, RateBudgetError, currentBudgetPriority, withBudgetPriority, type BudgetPriority, type RequestBudget, type RequestObserver, type PauseWhy } from './request-budget.js';
export type { MintJitConfigInput, ListRunnersInput, DeleteRunnerInput } from './runners.js';
export type { ListDeliveriesInput, DeliveriesPage } from './deliveries.js';
export { RunnerNameTakenError, RunnerBusyError } from './errors.js';
export type {
  RunnerScope,
  Runner,
  JitConfig,
  Repository,
  RepositoryVisibility,
  WorkflowJob,
  WorkflowRun,
  RunFacts,
  RunFactsStore,
  RunCancellation,
  HookDelivery,
  HookDeliveryDetail,
  RunnerGroup,
  RunnerGroupRepository,
  RunnerGroupVisibility,
} from './types.js';
export { convertAppManifest, type CreatedApp } from './app-manifest.js';
