import { Duplex } from 'node:stream';
import { FrameGuard } from './frame-guard.js';

/** The parts of a socket-like stream the broker connection needs. */
type Transport = Duplex & { remoteAddress?: string | undefined };

/**
 * Wraps a client transport (TCP/TLS socket or WebSocket stream) so every byte passes the
 * frame guard before aedes sees it; an oversized or malformed frame destroys the connection
 * with the reason, and its body is never buffered.
 */
export class GuardedConnection extends Duplex {
  readonly remoteAddress: string | undefined;
  private readonly guard: FrameGuard;

  constructor(
    private readonly transport: Transport,
    limits: { maxPacketBytes: number; maxConnectBytes: number },
    private readonly onRefused: (reason: string) => void,
  ) {
    super({ allowHalfOpen: false });
    this.remoteAddress = transport.remoteAddress;
    this.guard = new FrameGuard(limits.maxPacketBytes, limits.maxConnectBytes);
    transport.on('data', (chunk: Buffer) => {
      const verdict = this.guard.check(chunk);
      if (!verdict.ok) {
        this.onRefused(verdict.reason);
        this.destroy(new Error(verdict.reason));
        return;
      }
      if (!this.push(chunk)) transport.pause();
    });
    transport.on('end', () => this.push(null));
    transport.on('error', (err) => this.destroy(err));
    transport.on('close', () => this.destroy());
  }

  override _read(): void {
    this.transport.resume();
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (err?: Error | null) => void,
  ): void {
    if (this.transport.destroyed) {
      callback(new Error('connection closed'));
      return;
    }
    this.transport.write(chunk, callback);
  }

  /**
   * mqtt-packet writes a packet in several small pieces while the stream is corked (a PUBACK
   * is three), and every packet of a tick comes uncorked at once: one write to the transport,
   * one syscall, instead of one each.
   */
  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (err?: Error | null) => void,
  ): void {
    if (this.transport.destroyed) {
      callback(new Error('connection closed'));
      return;
    }
    this.transport.write(Buffer.concat(chunks.map(({ chunk }) => chunk)), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.transport.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.transport.destroy();
    callback(err);
  }
}
