import { HangarError } from '../domain/errors.js';

/** GitHub's documentation root, as it appears in `documentation_url` of its error bodies. */
export const DOCS = 'https://docs.github.com/rest';

/**
 * A request the sim refuses. Routes map it to GitHub's error body `{message, documentation_url, status}`;
 * `errors` is the `Validation Error Simple` list GitHub adds to some 422s.
 */
export class SimError extends HangarError {
  readonly status: number;
  readonly documentationUrl: string;
  readonly errors: string[] | undefined;
  constructor(status: number, message: string, documentationUrl: string = DOCS, errors?: string[]) {
    super('sim', message);
    this.status = status;
    this.documentationUrl = documentationUrl;
    this.errors = errors;
  }
}

export const notFound = (docs: string = DOCS) => new SimError(404, 'Not Found', docs);

/** The body GitHub sends with an error status (recent API versions add `status` as a string). */
export function errorBody(err: SimError): Record<string, unknown> {
  const body: Record<string, unknown> = {
    message: err.message,
    documentation_url: err.documentationUrl,
    status: String(err.status),
  };
  if (err.errors) body.errors = err.errors;
  return body;
}
