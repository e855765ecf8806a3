import type { ServerResponse } from 'node:http';
import type { StreamMessage } from './api-types.js';
import { SECURITY_HEADERS } from './auth.js';
import type { ReadModel } from './read-model.js';

/**
 * `GET /api/v1/stream`: Server-Sent Events. Each client gets the whole overview first, then
 * every changed view as the read model sees it; one serialisation per change, written to every
 * open stream. A comment every `heartbeatMs` keeps proxies from closing an idle stream. A client
 * that stops reading (its buffer past `maxBufferedBytes`) is dropped: it reconnects and starts
 * again from the overview.
 */
export class StreamHub {
  private readonly clients = new Set<ServerResponse>();
  private seq = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly model: ReadModel,
    private readonly opts: { heartbeatMs?: number; maxBufferedBytes?: number } = {},
  ) {
    this.unsubscribe = model.subscribe((m) => this.broadcast(m));
    this.timer = setInterval(() => this.writeAll(': hb\n\n'), opts.heartbeatMs ?? 15_000);
    this.timer.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Takes over a response (the route has hijacked it) and sends the overview. */
  open(res: ServerResponse): void {
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
    res.write(this.frame({ event: 'overview', data: this.model.overview() }));
  }

  close(): void {
    clearInterval(this.timer);
    this.unsubscribe();
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private broadcast(m: StreamMessage): void {
    if (this.clients.size > 0) this.writeAll(this.frame(m));
  }

  private frame(m: StreamMessage): string {
    return `id: ${++this.seq}\nevent: ${m.event}\ndata: ${JSON.stringify(m.data)}\n\n`;
  }

  private writeAll(text: string): void {
    const max = this.opts.maxBufferedBytes ?? 4 * 1024 * 1024;
    for (const res of this.clients) {
      if (res.writableLength > max) {
        res.destroy();
        this.clients.delete(res);
        continue;
      }
      res.write(text);
    }
  }
}
