import { describe, expect, test } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { checkAllowEntry, expandAllowlist } from '../../src/config/egress.js';
import { EGRESS_PRESETS } from '../../src/config/egress-presets.js';
import { ConfigError, type ConfigProblem } from '../../src/domain/errors.js';

const POOLS = [
  { name: 'build', labels: ['self-hosted', 'build'] },
  { name: 'deploy', labels: ['self-hosted', 'deploy'], deploy: { repositories: ['acme/site'], branches: ['main'] } },
];

const yaml = (o: { pools?: object[]; agent?: object }) => stringify({ pools: o.pools ?? POOLS, ...(o.agent ? { agent: o.agent } : {}) });
const parse = (o: { pools?: object[]; agent?: object }) => parseConfig(yaml(o), 'test.yaml');
const problemsOf = (o: { pools?: object[]; agent?: object }): ConfigProblem[] => {
  try {
    parse(o);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
};
const withEgress = (egress: unknown) => [POOLS[0]!, { ...POOLS[1]!, egress }];

describe('allowlist entries', () => {
  test.each(['registry.npmjs.org', 'Registry.NPMjs.org', '*.pkg.github.com', 'github', 'GitHub', 'xn--bcher-kva.example', 'a-b.co'])(
    '%s is accepted',
    (entry) => expect(checkAllowEntry(entry)).toBeUndefined(),
  );

  test.each<[string, string]>([
    ['gihub', 'unknown preset "gihub" (known: github); did you mean "github"?'],
    ['npm', 'unknown preset "npm" (known: github)'],
    ['constructor', 'unknown preset "constructor" (known: github)'],
    ['*.com', '"*.com" covers a whole top-level domain; name the domain below it (*.example.com)'],
    ['**.github.com', '"**.github.com": a wildcard is one leading "*." only, as in *.pkg.github.com'],
    ['a.*.github.com', '"a.*.github.com": a wildcard is one leading "*." only, as in *.pkg.github.com'],
    ['*github.com', '"*github.com": a wildcard is one leading "*." only, as in *.pkg.github.com'],
    ['https://registry.npmjs.org', '"https://registry.npmjs.org" is a URL; an entry is a name (registry.npmjs.org): it covers every path and port'],
    ['github.com:443', '"github.com:443" has a port; an entry is a name and covers every port'],
    ['140.82.112.3', '"140.82.112.3" is an address; an allowlist holds names, and lets out what they resolve to'],
    ['-bad.example', 'expected a domain (registry.npmjs.org), a wildcard (*.pkg.github.com) or a preset (github), got "-bad.example"'],
    ['under_score.example', 'expected a domain (registry.npmjs.org), a wildcard (*.pkg.github.com) or a preset (github), got "under_score.example"'],
    ['github.com.', 'expected a domain (registry.npmjs.org), a wildcard (*.pkg.github.com) or a preset (github), got "github.com."'],
    ['', 'expected a domain (registry.npmjs.org), a wildcard (*.pkg.github.com) or a preset (github), got ""'],
  ])('%j is refused', (entry, message) => expect(checkAllowEntry(entry)).toBe(message));
});

describe('the github preset', () => {
  const github = EGRESS_PRESETS.github!;

  test('holds the hosts GitHub lists for self-hosted runners, each a valid lowercase entry', () => {
    for (const host of ['github.com', 'api.github.com', '*.actions.githubusercontent.com', 'codeload.github.com', 'pkg.actions.githubusercontent.com',
      'results-receiver.actions.githubusercontent.com', '*.blob.core.windows.net', 'objects.githubusercontent.com', 'objects-origin.githubusercontent.com',
      'github-releases.githubusercontent.com', 'github-registry-files.githubusercontent.com', 'ghcr.io', '*.pkg.github.com']) {
      expect(github).toContain(host);
    }
    for (const host of github) {
      expect(checkAllowEntry(host)).toBeUndefined();
      expect(host).toBe(host.toLowerCase());
    }
    expect(new Set(github).size).toBe(github.length);
  });

  test('leaves out what the page does not list for runners', () => {
    expect(github).not.toContain('*.githubusercontent.com');
    expect(github).not.toContain('*.github.com');
    expect(github).not.toContain('pkg-containers.githubusercontent.com');
  });
});

describe('expandAllowlist', () => {
  test('presets expanded in place, names lowercased, each once, in first-listed order', () => {
    expect(expandAllowlist(['Registry.npmjs.org', 'GitHub', 'registry.npmjs.org', 'GITHUB.COM', '*.Example.org'])).toEqual([
      'registry.npmjs.org',
      ...EGRESS_PRESETS.github!,
      '*.example.org',
    ]);
  });

  test('an entry validation refuses is a TypeError, never passed on', () => {
    expect(() => expandAllowlist(['gihub'])).toThrow(TypeError);
    expect(() => expandAllowlist(['constructor'])).toThrow(/unknown preset/);
  });
});

describe('pools[].egress', () => {
  test('internet by default', () => {
    expect(parse({}).pools.map((p) => p.egress)).toEqual([{ mode: 'internet' }, { mode: 'internet' }]);
  });

  test('an allowlist is kept as written (the agent expands it)', () => {
    const cfg = parse({ pools: withEgress({ mode: 'allowlist', allow: ['github', 'registry.npmjs.org', '*.pkg.github.com'] }) });
    expect(cfg.pools[1]!.egress).toEqual({ mode: 'allowlist', allow: ['github', 'registry.npmjs.org', '*.pkg.github.com'] });
  });

  test.each<[string, unknown, ConfigProblem[]]>([
    ['unknown preset, with its path', { mode: 'allowlist', allow: ['gihub'] }, [{ path: 'pools.1.egress.allow.0', message: 'unknown preset "gihub" (known: github); did you mean "github"?' }]],
    ['every bad entry named', { mode: 'allowlist', allow: ['github', '*.com', 'ok.example', 'a.*.b'] }, [
      { path: 'pools.1.egress.allow.1', message: '"*.com" covers a whole top-level domain; name the domain below it (*.example.com)' },
      { path: 'pools.1.egress.allow.3', message: '"a.*.b": a wildcard is one leading "*." only, as in *.pkg.github.com' },
    ]],
    ['empty allowlist', { mode: 'allowlist', allow: [] }, [{ path: 'pools.1.egress.allow', message: 'an empty allowlist lets nothing out, not even GitHub: list names or presets, or use mode internet' }]],
    ['allow is only for allowlist mode', { mode: 'internet', allow: ['github'] }, [{ path: 'pools.1.egress.allow', message: 'unknown key' }]],
  ])('%s', (_name, egress, want) => expect(problemsOf({ pools: withEgress(egress) })).toEqual(want));

  test('a mode that does not exist, or an allowlist without its list, is named', () => {
    expect(problemsOf({ pools: withEgress({ mode: 'allow' }) }).map((p) => p.path)).toEqual(['pools.1.egress.mode']);
    expect(problemsOf({ pools: withEgress({ mode: 'allowlist' }) }).map((p) => p.path)).toEqual(['pools.1.egress.allow']);
  });
});
