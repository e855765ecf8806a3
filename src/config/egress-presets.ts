/**
 * Named groups of hosts an allowlist pool may name instead of listing them (`allow: [github, …]`).
 * A preset name has no dot, so it can never be mistaken for a domain.
 */

/**
 * What a runner needs of GitHub, as GitHub's docs list it for self-hosted runners: "About
 * self-hosted runners → Communication between self-hosted runners and GitHub", now at
 * https://docs.github.com/en/actions/reference/runners/self-hosted-runners#accessible-domains-by-function
 * (the list is the reusable `data/reusables/actions/runner-essential-communications.md` in
 * github/docs). Grouped as the page groups them; keep it to that page so an operator can check it.
 *
 * Left out on purpose:
 * - `*.githubusercontent.com` and `*.github.com`: the page gives them only as a wildcard example
 *   for GitHub Enterprise Server. They are far wider than a runner needs: raw.githubusercontent.com
 *   and gist hosts serve anyone's files, which is a way in for code and a way out for data.
 * - `pkg-containers.githubusercontent.com`: not on the page, but where ghcr.io sends image layers.
 *   A pool whose jobs pull images from ghcr.io adds it itself (`allow: [github, pkg-containers.githubusercontent.com]`).
 *
 * Kept although wide: `*.blob.core.windows.net` is every Azure storage account, not only
 * GitHub's; the page needs it for artifacts, caches, logs and job summaries, and without it
 * `actions/upload-artifact` and `actions/cache` fail. A job in a pool with this preset can
 * therefore send data to an Azure storage account of its own choosing.
 */
const GITHUB: readonly string[] = [
  // Essential operations (and OIDC tokens, also *.actions.githubusercontent.com)
  'github.com',
  'api.github.com',
  '*.actions.githubusercontent.com',
  // Downloading actions
  'codeload.github.com',
  'pkg.actions.githubusercontent.com',
  // Publishing immutable actions; GitHub Packages containers
  'ghcr.io',
  // Job summaries, logs, workflow artifacts and caches
  'results-receiver.actions.githubusercontent.com',
  '*.blob.core.windows.net',
  // Runner version updates
  'objects.githubusercontent.com',
  'objects-origin.githubusercontent.com',
  'github-releases.githubusercontent.com',
  'github-registry-files.githubusercontent.com',
  // GitHub Packages
  '*.pkg.github.com',
  // Git Large File Storage
  'github-cloud.githubusercontent.com',
  'github-cloud.s3.amazonaws.com',
  // Jobs for Dependabot updates
  'dependabot-actions.githubapp.com',
];

export const EGRESS_PRESETS: Readonly<Record<string, readonly string[]>> = { github: GITHUB };

export const EGRESS_PRESET_NAMES: readonly string[] = Object.keys(EGRESS_PRESETS);
