import { describe, expect, test } from 'vitest';
import { GitHubError } from '../../src/domain/errors.js';
import { nextCursorOf } from '../../src/github/deliveries.js';
import { RunnerBusyError, RunnerNameTakenError, toGitHubError } from '../../src/github/errors.js';

describe('toGitHubError', () => {
  test('an Octokit-shaped error becomes GitHubError with its status and GitHub message', () => {
    const err = Object.assign(new Error('Not Found - https://docs.github.com'), {
      status: 404,
      response: { data: { message: 'Not Found' }, headers: { authorization: 'token ghs_secret' } },
    });
    const mapped = toGitHubError(err, 'get job');
    expect(mapped).toBeInstanceOf(GitHubError);
    expect(mapped).toMatchObject({ status: 404, code: 'github' });
    expect((mapped as Error).message).toBe('get job: GitHub answered 404: Not Found');
    // The Octokit error (request and response) is not carried along.
    expect((mapped as Error).cause).toBeUndefined();
  });

  test('anything without a status is passed through unchanged', () => {
    const err = new TypeError('boom');
    expect(toGitHubError(err, 'x')).toBe(err);
  });

  test('typed errors are GitHubErrors with the status callers branch on', () => {
    expect(new RunnerNameTakenError('r1', 'm')).toMatchObject({ status: 409, runnerName: 'r1' });
    expect(new RunnerBusyError(7, 'm')).toMatchObject({ status: 422, runnerId: 7 });
    expect(new RunnerBusyError(7, 'm')).toBeInstanceOf(GitHubError);
  });
});

describe('nextCursorOf', () => {
  test.each([
    ['no header', undefined, null],
    ['no next', '<https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_1>; rel="prev"', null],
    [
      'next among others',
      '<https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_9>; rel="prev", <https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_5%3D>; rel="next"',
      'v1_5=',
    ],
  ])('%s', (_name, link, want) => expect(nextCursorOf(link)).toBe(want));
});
