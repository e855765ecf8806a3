/**
 * systemd unit files as data: render and parse the INI-like format (systemd.syntax(7)).
 * There is no maintained parser on npm, and the format is small: sections, `Key=Value`
 * entries where a key may repeat (order matters: `ExecStart=` or an empty value resets a
 * list), `#`/`;` comments, and a trailing backslash continuing a line.
 *
 * parseUnit(renderUnit(x)) equals x for every x renderUnit accepts. Comments round-trip as
 * text without their `# ` prefix; blank lines and continuations are layout, not data.
 */

export interface UnitEntry {
  key: string;
  value: string;
  /** Comment lines just above the entry (why it is set). */
  comments?: string[];
}

export interface UnitSection {
  name: string;
  entries: UnitEntry[];
  comments?: string[];
}

export interface UnitFile {
  /** The block at the top of the file, separated from the first section by a blank line. */
  comments?: string[];
  sections: UnitSection[];
}

export class UnitSyntaxError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'UnitSyntaxError';
  }
}

const KEY = /^[A-Za-z0-9_-]+$/;
const SECTION = /^[^[\]\n]+$/;

function commentLines(comments: string[] | undefined): string[] {
  return (comments ?? []).map((c) => (c === '' ? '#' : `# ${c}`));
}

function checkValue(where: string, value: string): void {
  if (value !== value.trim()) throw new TypeError(`${where}: leading or trailing blanks would not survive parsing`);
  if (/[\n\r]/.test(value)) throw new TypeError(`${where}: a value cannot contain a line break`);
  // A trailing backslash would glue the next line on when parsed back.
  if (value.endsWith('\\')) throw new TypeError(`${where}: a value cannot end with a backslash`);
}

export function renderUnit(unit: UnitFile): string {
  const out: string[] = [];
  if (unit.comments?.length) out.push(...commentLines(unit.comments), '');
  unit.sections.forEach((section, i) => {
    if (!SECTION.test(section.name)) throw new TypeError(`bad section name ${JSON.stringify(section.name)}`);
    if (i > 0) out.push('');
    out.push(...commentLines(section.comments), `[${section.name}]`);
    for (const { key, value, comments } of section.entries) {
      if (!KEY.test(key)) throw new TypeError(`[${section.name}]: bad key ${JSON.stringify(key)}`);
      checkValue(`[${section.name}] ${key}`, value);
      out.push(...commentLines(comments), `${key}=${value}`);
    }
  });
  return `${out.join('\n')}\n`;
}

const isComment = (line: string) => line.startsWith('#') || line.startsWith(';');
const commentText = (line: string) => line.slice(1).replace(/^ /, '');

/** Joins continued lines (trailing `\`) into one logical line each; comments inside a continuation are dropped, as systemd does. */
function logicalLines(text: string): Array<{ n: number; text: string }> {
  const physical = text.replace(/\r\n/g, '\n').split('\n');
  const out: Array<{ n: number; text: string }> = [];
  for (let i = 0; i < physical.length; i++) {
    let line = physical[i]!.trim();
    const n = i + 1;
    while (!isComment(line) && line.endsWith('\\') && i + 1 < physical.length) {
      let next = physical[++i]!.trim();
      while (isComment(next) && i + 1 < physical.length) next = physical[++i]!.trim();
      line = `${line.slice(0, -1)} ${isComment(next) ? '' : next}`.trimEnd();
    }
    out.push({ n, text: line });
  }
  return out;
}

export function parseUnit(text: string): UnitFile {
  const unit: UnitFile = { sections: [] };
  let section: UnitSection | undefined;
  let pending: string[] = [];
  const take = () => {
    const c = pending;
    pending = [];
    return c.length ? { comments: c } : {};
  };
  for (const { n, text: line } of logicalLines(text)) {
    if (line === '') {
      // A comment block followed by a blank line before any section describes the file.
      if (!section && pending.length) unit.comments = [...(unit.comments ?? []), ...take().comments!];
    } else if (isComment(line)) {
      pending.push(commentText(line));
    } else if (line.startsWith('[')) {
      if (!line.endsWith(']') || !SECTION.test(line.slice(1, -1))) throw new UnitSyntaxError(n, `bad section header ${line}`);
      section = { name: line.slice(1, -1), ...take(), entries: [] };
      unit.sections.push(section);
    } else {
      const eq = line.indexOf('=');
      if (!section) throw new UnitSyntaxError(n, 'entry before the first [Section]');
      if (eq < 1) throw new UnitSyntaxError(n, `expected Key=Value, got ${JSON.stringify(line)}`);
      const key = line.slice(0, eq).trim();
      if (!KEY.test(key)) throw new UnitSyntaxError(n, `bad key ${JSON.stringify(key)}`);
      section.entries.push({ key, value: line.slice(eq + 1).trim(), ...take() });
    }
  }
  return unit;
}

/** Every value of `key` in `[section]`, in order (repeated keys are how lists are written). */
export function unitValues(unit: UnitFile, section: string, key: string): string[] {
  return unit.sections.filter((s) => s.name === section).flatMap((s) => s.entries.filter((e) => e.key === key).map((e) => e.value));
}
