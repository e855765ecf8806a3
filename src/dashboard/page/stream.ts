/**
 * The page's one live feed: an EventSource on /api/v1/stream. Its first message is the whole
 * overview, then one message per changed view (api-types.ts StreamMessage). The browser
 * reconnects a dropped stream by itself; one it gave up on (the server answered an error, or
 * restarted badly) is opened again after a growing pause, unless the session ended (then the
 * login). Each (re)connect starts with a fresh overview, so nothing is missed in between. No
 * polling: the page asks nothing on a timer while the stream is open.
 */
import type { StreamEventName, StreamMessage } from '../api-types.js';
import { sessionHolds, toLogin } from './api.js';

const EVENTS: readonly StreamEventName[] = ['overview', 'job', 'host', 'pool', 'refusal', 'batch', 'savings'];

export type LinkState = 'connecting' | 'live' | 'reconnecting';

export interface StreamHandlers {
  message(m: StreamMessage): void;
  state(s: LinkState): void;
}

export function openStream(h: StreamHandlers, url = '/api/v1/stream'): { close(): void } {
  let es: EventSource | null = null;
  let retryMs = 1000;
  let timer: number | undefined;
  let closed = false;

  const connect = (): void => {
    es = new EventSource(url);
    h.state('connecting');
    for (const name of EVENTS) {
      es.addEventListener(name, (e) => {
        let data: unknown;
        try {
          data = JSON.parse((e as MessageEvent<string>).data);
        } catch {
          return; // a broken message changes nothing; the next overview sets everything right
        }
        if (name === 'overview') {
          retryMs = 1000;
          h.state('live');
        }
        h.message({ event: name, data } as StreamMessage);
      });
    }
    es.addEventListener('error', () => {
      if (closed || !es) return;
      if (es.readyState === EventSource.CONNECTING) {
        h.state('reconnecting');
        return;
      }
      // CLOSED: the browser will not try again by itself (an HTTP error, a wrong content type).
      es.close();
      h.state('reconnecting');
      void sessionHolds().then((holds) => {
        if (closed) return;
        if (!holds) return toLogin();
        timer = window.setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 30_000);
      });
    });
  };
  connect();
  return {
    close() {
      closed = true;
      window.clearTimeout(timer);
      es?.close();
    },
  };
}
