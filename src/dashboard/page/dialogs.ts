/**
 * The page's own confirm dialog (a <dialog> in index.html, not window.confirm: it takes a reason,
 * it is styled, and it works the same with a keyboard, Escape and a screen reader), and the
 * notice line where every action's result is shown.
 */
import { ApiFailure } from './api.js';
import { byId } from './dom.js';

/** Asks before an operator action; resolves to the reason typed (possibly empty), or null when cancelled. */
export function confirmAction(question: string, confirmLabel: string): Promise<string | null> {
  const dialog = byId<HTMLDialogElement>('confirm');
  const reason = byId<HTMLInputElement>('confirm-reason');
  byId('confirm-question').textContent = question;
  byId('confirm-ok').textContent = confirmLabel;
  reason.value = '';
  // Back is no submit button, so Enter in the reason field confirms (the form's one submit button).
  byId('confirm-back').onclick = () => dialog.close('cancel');
  return new Promise((resolve) => {
    const done = (): void => {
      dialog.removeEventListener('close', done);
      resolve(dialog.returnValue === 'ok' ? reason.value : null);
    };
    dialog.addEventListener('close', done);
    dialog.returnValue = '';
    dialog.showModal();
    reason.focus();
  });
}

let noticeTimer: number | undefined;

/** Shows an action's result (or its failure) in the header's status line, read out by screen readers. */
export function notice(text: string, kind: 'ok' | 'error' = 'ok'): void {
  const el = byId('notice');
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = false;
  window.clearTimeout(noticeTimer);
  // Hiding a message is no poll: nothing is asked of the server.
  if (kind === 'ok') noticeTimer = window.setTimeout(() => (el.hidden = true), 15_000);
}

/** Runs an operator action after its confirm, showing what came of it; resolves true when it was done. */
export async function act<T extends { message: string }>(question: string, label: string, run: (why: string) => Promise<T>): Promise<T | null> {
  const why = await confirmAction(question, label);
  if (why === null) return null;
  try {
    const r = await run(why);
    notice(r.message, 'ok');
    return r;
  } catch (err) {
    const text = err instanceof ApiFailure ? `${label} failed: ${err.body.message}` : `${label} failed: ${err instanceof Error ? err.message : String(err)}`;
    notice(text, 'error');
    return null;
  }
}
