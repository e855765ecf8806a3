import type { z } from 'zod';
import type { ConfigProblem } from '../domain/errors.js';
import { closest } from './did-you-mean.js';

/** zod's issues as problems: dotted paths, and for an unknown key the known key it is nearest. */
export function toProblems(error: z.ZodError, schema: z.ZodType, input: unknown, moved?: MovedKey): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of error.issues) {
    // A key left out is "required"; a whole section left out says which process needs it (requiredFor).
    if (issue.code === 'invalid_type' && issue.path.length > 1 && valueAt(input, issue.path) === undefined) {
      problems.push({ path: issue.path.join('.'), message: `required (${issue.expected})` });
      continue;
    }
    if (issue.code !== 'unrecognized_keys') {
      problems.push({ path: issue.path.join('.'), message: issue.message });
      continue;
    }
    const known = keysAt(schema, issue.path as (string | number)[]);
    for (const key of issue.keys) {
      const path = [...issue.path, key].join('.');
      problems.push({ path, message: moved?.(path, input) ?? unknownKey(key, known) });
    }
  }
  return problems;
}

/** Where a key that left a section went, if it did: (dotted path, the whole input) → message. */
export type MovedKey = (path: string, input: unknown) => string | undefined;

/** The input's value at a path, undefined where the path leaves it. */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const k of path) v = typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

export function unknownKey(key: string, known: readonly string[]): string {
  const near = closest(key, known);
  return `unknown key "${key}"${near ? ` (did you mean "${near}"?)` : ''}`;
}

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
}
const def = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The objects a schema may be at `path` (several under a union), through wrappers and pipes. */
function objectsAt(schema: z.ZodType, path: readonly (string | number)[]): Def[] {
  const d = def(schema);
  if (d.innerType) return objectsAt(d.innerType, path);
  if (d.type === 'pipe' && d.in) return objectsAt(d.in, path);
  if (d.options) return d.options.flatMap((o) => objectsAt(o, path));
  if (path.length === 0) return d.type === 'object' ? [d] : [];
  const [head, ...rest] = path;
  if (d.type === 'array' && d.element && typeof head === 'number') return objectsAt(d.element, rest);
  const next = d.type === 'object' && typeof head === 'string' ? d.shape?.[head] : undefined;
  return next ? objectsAt(next, rest) : [];
}

/** The keys allowed at `path` of a schema (the union of them under a union). */
export function keysAt(schema: z.ZodType, path: readonly (string | number)[]): string[] {
  return [...new Set(objectsAt(schema, path).flatMap((d) => Object.keys(d.shape ?? {})))];
}
