/**
 * The one way the page builds DOM: elements made with createElement, text put in as text nodes.
 * Nothing here parses HTML, so a string from GitHub (a job named `<img src=x onerror=…>`) can only
 * ever become text. Attribute values are set with setAttribute, never on* handlers or URLs from
 * data: an attribute named on… or an href/src that is not the page's own is refused.
 */
export type Child = Node | string | number | null | undefined | false | readonly Child[];
export type Attrs = Record<string, string | number | boolean | null | undefined>;

const SAFE_URL = /^(\/(?!\/)|#)/;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) setAttr(el, name, value);
  append(el, children);
  return el;
}

export function setAttr(el: Element, name: string, value: string | number | boolean | null | undefined): void {
  if (/^on/i.test(name) || name.toLowerCase() === 'style') throw new Error(`dom: attribute ${name} is not set from code (CSP, and no handlers in markup)`);
  if ((name === 'href' || name === 'src' || name === 'action') && typeof value === 'string' && !SAFE_URL.test(value)) {
    throw new Error(`dom: ${name} must be the page's own path, not ${value}`);
  }
  if (value === null || value === undefined || value === false) el.removeAttribute(name);
  else el.setAttribute(name, value === true ? '' : String(value));
}

export function append(el: Node, children: readonly Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : (c as Node));
  }
}

/** Replaces an element's children, keeping the keyboard focus on the "same" control when it is rebuilt. */
export function replace(el: Element, ...children: Child[]): void {
  const active = document.activeElement;
  const key = active instanceof HTMLElement && el.contains(active) ? active.dataset.focusKey : undefined;
  el.replaceChildren();
  append(el, children);
  if (key) {
    const again = el.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(key)}"]`);
    again?.focus({ preventScroll: true });
  }
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page: no element #${id}`);
  return el as T;
}

/** A CSS class from a value that may come from GitHub (a conclusion): letters, digits and dashes only. */
export const token = (s: string): string => s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 40);

/** A table of rows, with the column names also on each cell (the phone layout shows them as labels). */
export function table(caption: string, columns: string[], rows: HTMLTableRowElement[], empty: string): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  for (const row of rows) {
    Array.from(row.cells).forEach((cell, i) => {
      if (!columns[i] || cell.tagName !== 'TD') return;
      cell.dataset.label = columns[i];
      // One box per cell, beside its label on a phone.
      const inner = h('div', { class: 'cell' });
      inner.append(...Array.from(cell.childNodes));
      cell.append(inner);
    });
  }
  return h(
    'div',
    { class: 'table-wrap' },
    h('table', null, h('caption', { class: 'visually-hidden' }, caption), h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c)))), h('tbody', null, rows)),
  );
}
