import { Octokit } from '@octokit/rest';
import { GitHubError } from '../domain/errors.js';
import { githubCall } from './errors.js';

/** What `POST /app-manifests/{code}/conversions` hands back, camelCased. `pem` and the secrets are secret. */
export interface CreatedApp {
  id: number;
  slug: string;
  name: string;
  ownerLogin: string;
  htmlUrl: string;
  permissions: Record<string, string>;
  events: string[];
  pem: string;
  webhookSecret: string;
  clientId: string;
  clientSecret: string;
}

/**
 * The last step of GitHub's App-manifest flow: the temporary code (an hour, single use) becomes
 * the App and its credentials. No authentication: the code is the credential. Not retried: a
 * second try of a code GitHub already spent answers 404.
 */
export async function convertAppManifest(apiUrl: string, code: string, timeoutMs = 30_000): Promise<CreatedApp> {
  const octokit = new Octokit({ baseUrl: apiUrl.replace(/\/+$/, ''), request: { signal: AbortSignal.timeout(timeoutMs) } });
  const { data } = await githubCall('create an App from its manifest', () => octokit.rest.apps.createFromManifest({ code }));
  if (!data.pem || !data.webhook_secret) throw new GitHubError(502, 'create an App from its manifest: GitHub created the App but sent no key or no webhook secret');
  return {
    id: data.id, slug: data.slug ?? '', name: data.name, ownerLogin: data.owner && 'login' in data.owner ? data.owner.login : '',
    htmlUrl: data.html_url, permissions: Object.fromEntries(Object.entries(data.permissions).filter((e): e is [string, string] => typeof e[1] === 'string')),
    events: data.events, pem: data.pem, webhookSecret: data.webhook_secret, clientId: data.client_id, clientSecret: data.client_secret,
  };
}
