import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/**
 * Debian's Chromium driven by playwright-core: the dashboard's browser tests, and the lead's e2e
 * test against a real agent. No browser is downloaded (`npx playwright install` cannot reach
 * anything here); test/setup.sh installs the `chromium` package.
 *
 * A page opened here records what a test must see none of: console errors, CSP violations (the
 * `securitypolicyviolation` event, reported to the test through a binding, so it is caught even
 * when Chromium logs nothing), uncaught page errors, dialogs (an `alert()` an injection fired),
 * and navigations after the first load (a "live" update that was really a reload).
 */
export const CHROMIUM = process.env.HANGAR_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));

export const PHONE = { width: 390, height: 844 } as const;
export const LAPTOP = { width: 1280, height: 900 } as const;

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run test/setup.sh (Debian package chromium)`);
  // Chromium refuses to start its sandbox as root; anyone else keeps it.
  const args = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  consoleErrors: string[];
  cspViolations: string[];
  pageErrors: string[];
  dialogs: string[];
  /** Main-frame navigations, in order (the first load is the first entry). */
  navigations: string[];
  /** Everything a clean page must not have, as one list (empty when clean). */
  problems(): string[];
  close(): Promise<void>;
}

export interface PageOptions {
  viewport?: { width: number; height: number };
  /** Touch and a phone's user agent, with the phone viewport. */
  mobile?: boolean;
}

/** A fresh context (its own cookies) and page, watched. */
export async function openPage(browser: Browser, o: PageOptions = {}): Promise<WatchedPage> {
  const context = await browser.newContext({
    viewport: o.viewport ?? (o.mobile ? PHONE : LAPTOP),
    ...(o.mobile ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
    // Offline in spirit: nothing but the control answers (a CDN request would fail and show as a console error).
    serviceWorkers: 'block',
  });
  const page = await context.newPage();
  const w: WatchedPage = {
    page,
    context,
    consoleErrors: [],
    cspViolations: [],
    pageErrors: [],
    dialogs: [],
    navigations: [],
    problems: () => [
      ...w.consoleErrors.map((m) => `console: ${m}`),
      ...w.cspViolations.map((m) => `csp: ${m}`),
      ...w.pageErrors.map((m) => `pageerror: ${m}`),
      ...w.dialogs.map((m) => `dialog: ${m}`),
    ],
    close: () => context.close(),
  };
  page.on('console', (m) => {
    if (m.type() === 'error') w.consoleErrors.push(`${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => w.pageErrors.push(e.message));
  page.on('dialog', (d) => {
    w.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) w.navigations.push(f.url());
  });
  await page.exposeBinding('__hangarCspViolation', (_src, v: string) => void w.cspViolations.push(v));
  // Injected by the browser itself (DevTools), so the page's CSP does not apply to this script.
  // Browser code is passed as text: the test program has Node's types, not the DOM's.
  await page.addInitScript(`document.addEventListener('securitypolicyviolation', (e) =>
    window.__hangarCspViolation(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber));`);
  return w;
}

/**
 * Logs in through the page's own form, as an operator would: the login page, the token typed,
 * submitted; resolves once the dashboard has loaded. Returns what the browser ended on.
 */
export async function login(page: Page, baseUrl: string, token: string): Promise<string> {
  await page.goto(new URL('/login', baseUrl).href);
  await page.locator('input[name="token"]').fill(token);
  await Promise.all([page.waitForURL((u) => u.pathname === '/'), page.locator('form button[type="submit"], form input[type="submit"]').first().click()]);
  await page.locator('main[data-ready="true"]').waitFor();
  return page.url();
}

/** Evaluates a JavaScript expression in the page (text: the test program has no DOM types). */
export const inPage = <T>(page: Page, expression: string): Promise<T> => page.evaluate(expression) as Promise<T>;

/** The `data-focus-key` of the element that has the keyboard focus ('' for none). */
export const focusKey = (page: Page): Promise<string> => inPage(page, `document.activeElement?.dataset?.focusKey ?? ''`);

/** A full-page screenshot into test/artifacts/NAME.png (gitignored); returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name.replace(/[^\w.-]+/g, '-')}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
