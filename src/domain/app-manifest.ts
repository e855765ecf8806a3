/**
 * The GitHub App Hangar needs, as a manifest for GitHub's App-manifest flow: exactly the
 * permissions its calls need (src/github/), each with the calls that need it, and the one event.
 * Pure: `hangar app create` (main/app-create.ts) posts it.
 */

export type RunnerScope = 'repo' | 'org' | 'both';

export interface PermissionNeed {
  permission: string;
  access: 'read' | 'write';
  why: string;
}

/** Every permission, and why; `scopes` says for which runner scope it is asked. */
export const PERMISSION_NEEDS: readonly (PermissionNeed & { scopes: readonly RunnerScope[] })[] = [
  {
    permission: 'actions', access: 'write', scopes: ['repo', 'org', 'both'],
    why: 'read workflow runs and jobs (reconcile, the start gate, the dashboard); cancel a run whose job policy refused (write), re-run a failed job from the dashboard (write)',
  },
  {
    permission: 'administration', access: 'write', scopes: ['repo', 'both'],
    why: 'repository self-hosted runners: generate-jitconfig, list and delete them (pools with scope: repo)',
  },
  {
    permission: 'organization_self_hosted_runners', access: 'write', scopes: ['org', 'both'],
    why: 'organization self-hosted runners: generate-jitconfig, list and delete them, and read runner groups (pools with scope: org; hangar policy check-groups)',
  },
  {
    permission: 'metadata', access: 'read', scopes: ['repo', 'org', 'both'],
    why: "a repository's visibility and fork flag (policy re-checks them at mint time) and the repositories the installation reaches (owner/* in policy.repos); GitHub gives every App this one",
  },
];

/** The events the App subscribes to: a job queued, started, finished. */
export const APP_EVENTS: readonly string[] = ['workflow_job'];

export interface ManifestInput {
  name: string;
  /** The control's public webhook URL (`https://HOST/webhooks/github`). */
  webhookUrl: string;
  /** Where GitHub sends the operator back with the code: the local page's callback. */
  redirectUrl: string;
  runnerScope: RunnerScope;
  /** The App's homepage, required by GitHub; default: the webhook URL's origin (the control). */
  homepageUrl?: string;
}

export function permissionsFor(scope: RunnerScope): PermissionNeed[] {
  return PERMISSION_NEEDS.filter((p) => p.scopes.includes(scope)).map(({ permission, access, why }) => ({ permission, access, why }));
}

/** The manifest as GitHub documents it (registering-a-github-app-from-a-manifest). */
export function appManifest(i: ManifestInput): Record<string, unknown> {
  return {
    name: i.name,
    url: i.homepageUrl ?? new URL(i.webhookUrl).origin,
    description: 'Self-hosted GitHub Actions runners: one ephemeral microVM per job (Hangar)',
    hook_attributes: { url: i.webhookUrl, active: true },
    redirect_url: i.redirectUrl,
    // Private: installable only on the account that owns it; runners are not for others' repositories.
    public: false,
    default_events: [...APP_EVENTS],
    default_permissions: Object.fromEntries(permissionsFor(i.runnerScope).map((p) => [p.permission, p.access])),
  };
}
