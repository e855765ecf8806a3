import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import type { DnsLimits } from './dns-forwarder.js';

/** The forwarder's sockets towards the guest: binding UDP and TCP together, and framing TCP. */

/** DNS over TCP (RFC 7766): 2-octet length, message; queries may be pipelined, answers in any order. */
export function serveTcp(
  sock: Socket,
  limits: Pick<DnsLimits, 'requestBytes' | 'tcpIdleMs' | 'tcpUnreadBytes'>,
  handle: (msg: Buffer) => Promise<Buffer | null>,
  tooLarge: () => void,
): void {
  sock.setTimeout(limits.tcpIdleMs, () => sock.destroy());
  sock.on('error', () => sock.destroy());
  let buf: Buffer = Buffer.alloc(0);
  sock.on('data', (chunk: Buffer) => {
    buf = buf.length > 0 ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      // Refused on the length alone: a huge message is never read, let alone buffered.
      if (len > limits.requestBytes) return tooLarge(), sock.destroy();
      if (buf.length < 2 + len) break;
      const msg = Buffer.from(buf.subarray(2, 2 + len));
      buf = buf.subarray(2 + len);
      void handle(msg).then((out) => {
        if (!out || sock.destroyed) return;
        if (sock.writableLength > limits.tcpUnreadBytes) return void sock.destroy();
        const frame = Buffer.alloc(2 + out.length);
        frame.writeUInt16BE(out.length, 0);
        out.copy(frame, 2);
        sock.write(frame);
      });
    }
  });
}

/** UDP and TCP on the same port; with port 0, the port the UDP socket got (tried a few times). */
export async function listenBoth(host: string, port: number): Promise<{ udp: UdpSocket; tcp: Server; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const udp = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', (err) => (udp.close(), reject(err)));
      udp.bind(port, host, () => (udp.removeAllListeners('error'), resolve()));
    });
    const bound = udp.address().port;
    const tcp = createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(bound, host, () => (tcp.off('error', reject), resolve()));
      });
      return { udp, tcp, port: bound };
    } catch (err) {
      udp.close();
      if (port !== 0 || attempt >= 8 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}
