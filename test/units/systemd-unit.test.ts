import { describe, expect, test } from 'vitest';
import { UnitSyntaxError, parseUnit, renderUnit, unitValues, type UnitFile } from '../../src/caps/systemd-unit.js';

describe('parseUnit', () => {
  test('sections, repeated keys in order, comments, continuations', () => {
    const unit = parseUnit(
      [
        '# about this file',
        '',
        '; the unit section',
        '[Unit]',
        'Description = spaced  out ',
        '',
        '[Service]',
        '# why',
        'ExecStart=',
        'ExecStart=/bin/echo a \\',
        '  # a comment inside a continuation is dropped',
        '  b \\',
        '  c',
        'Environment=A=1',
        'Environment=B=2',
      ].join('\r\n'),
    );
    expect(unit).toEqual<UnitFile>({
      comments: ['about this file'],
      sections: [
        { name: 'Unit', comments: ['the unit section'], entries: [{ key: 'Description', value: 'spaced  out' }] },
        {
          name: 'Service',
          entries: [
            { key: 'ExecStart', value: '', comments: ['why'] },
            { key: 'ExecStart', value: '/bin/echo a  b  c' },
            { key: 'Environment', value: 'A=1' },
            { key: 'Environment', value: 'B=2' },
          ],
        },
      ],
    });
    expect(unitValues(unit, 'Service', 'Environment')).toEqual(['A=1', 'B=2']);
  });

  test.each([
    ['entry before a section', 'Key=v', 1],
    ['no equals sign', '[Unit]\njust words', 2],
    ['broken header', '[Unit]\n[Service', 2],
    ['bad key', '[Unit]\nba d=1', 2],
  ])('%s is refused with its line', (_name, text, line) => {
    try {
      parseUnit(text);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(UnitSyntaxError);
      expect((err as UnitSyntaxError).line).toBe(line);
    }
  });
});

describe('renderUnit', () => {
  test('round-trips comments and empty values', () => {
    const unit: UnitFile = {
      comments: ['top', '', '  indented'],
      sections: [
        { name: 'Unit', comments: ['sec'], entries: [{ key: 'Description', value: 'x # not a comment' }] },
        { name: 'Service', entries: [{ key: 'CapabilityBoundingSet', value: '' }, { key: 'Foo', value: 'a', comments: ['c1', 'c2'] }] },
      ],
    };
    const text = renderUnit(unit);
    expect(text).toBe('# top\n#\n#   indented\n\n# sec\n[Unit]\nDescription=x # not a comment\n\n[Service]\nCapabilityBoundingSet=\n# c1\n# c2\nFoo=a\n');
    expect(parseUnit(text)).toEqual(unit);
  });

  test.each([
    ['a line break', 'a\nb'],
    ['a trailing backslash', 'a\\'],
    ['leading blanks', ' a'],
  ])('refuses a value with %s (it would not parse back)', (_name, value) => {
    expect(() => renderUnit({ sections: [{ name: 'S', entries: [{ key: 'K', value }] }] })).toThrow(TypeError);
  });
});
