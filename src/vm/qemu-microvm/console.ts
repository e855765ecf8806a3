import { closeSync, openSync, readSync, renameSync, fstatSync, writeSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

/**
 * The guest's serial console, kept bounded. QEMU serves it on a unix socket (`server=on,
 * wait=off`): while nobody is connected QEMU drops the output, so a dead or stuck agent never
 * blocks the guest and a hostile guest cannot fill the disk. This reader appends to
 * console.log; when the next chunk would take it past `limit`, the file is rewritten (temp +
 * rename) with only the newest half, so each byte is rewritten at most about once and the file
 * never holds more than `limit` bytes.
 */
export class BoundedConsole {
  private socket: Socket | null = null;
  private fd: number | null = null;
  private size = 0;
  private stopped = false;
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    private readonly sockPath: string,
    private readonly logPath: string,
    private readonly limit: number,
  ) {
    this.closed = new Promise((r) => { this.resolveClosed = r; });
  }

  /** Connects, retrying while `alive()` says the VM runs (QEMU makes the socket at start-up). */
  async start(alive: () => Promise<boolean>): Promise<void> {
    if (this.stopped) return;
    this.fd = openSync(this.logPath, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
    while (!this.stopped) {
      const s = await tryConnect(this.sockPath);
      if (s) return this.attach(s);
      if (!(await alive())) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    this.finish();
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.socket) this.socket.destroy();
    else this.finish();
    return this.closed;
  }

  private attach(s: Socket): void {
    this.socket = s;
    s.on('data', (chunk: Buffer) => this.write(chunk));
    s.on('error', () => s.destroy());
    s.on('close', () => this.finish());
    if (this.stopped) s.destroy();
  }

  private write(chunk: Buffer): void {
    if (this.fd === null) return;
    if (this.size + chunk.length <= this.limit) {
      writeSync(this.fd, chunk);
      this.size += chunk.length;
      return;
    }
    const keep = Math.min(this.limit, Math.max(Math.floor(this.limit / 2), chunk.length));
    const fromChunk = chunk.subarray(Math.max(0, chunk.length - keep));
    const fromFile = this.readTail(keep - fromChunk.length);
    const next = Buffer.concat([fromFile, fromChunk]);
    closeSync(this.fd);
    writeFileSync(`${this.logPath}.tmp`, next, { mode: 0o640 });
    renameSync(`${this.logPath}.tmp`, this.logPath);
    this.fd = openSync(this.logPath, 'a', 0o640);
    this.size = next.length;
  }

  private readTail(n: number): Buffer {
    if (n <= 0 || this.size === 0) return Buffer.alloc(0);
    const len = Math.min(n, this.size);
    const buf = Buffer.alloc(len);
    const rfd = openSync(this.logPath, 'r');
    try {
      readSync(rfd, buf, 0, len, this.size - len);
    } finally {
      closeSync(rfd);
    }
    return buf;
  }

  private finish(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.resolveClosed();
  }
}

function tryConnect(path: string): Promise<Socket | null> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
    s.once('error', () => { s.destroy(); resolve(null); });
  });
}
