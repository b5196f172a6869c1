import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { GuardedConnection } from './guarded-connection.js';

/** A transport that records every write it is handed. */
class RecordingTransport extends Duplex {
  readonly writes: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.writes.push(chunk);
    callback();
  }
}

const limits = { maxPacketBytes: 1024, maxConnectBytes: 1024 };
const tick = () => new Promise((resolve) => process.nextTick(resolve));

describe('GuardedConnection writes', () => {
  it('hands what was written while corked to the transport in one write, in order', async () => {
    const transport = new RecordingTransport();
    const connection = new GuardedConnection(transport, limits, () => {});
    // How mqtt-packet writes two PUBACKs in one tick: three pieces each, corked.
    connection.cork();
    for (const id of [1, 2]) {
      connection.write(Buffer.from([0x40]));
      connection.write(Buffer.from([0x02]));
      connection.write(Buffer.from([0, id]));
    }
    process.nextTick(() => connection.uncork());
    await tick();
    await tick();
    expect(transport.writes).toEqual([Buffer.from([0x40, 0x02, 0, 1, 0x40, 0x02, 0, 2])]);
  });

  it('passes a lone write through as it is', async () => {
    const transport = new RecordingTransport();
    const connection = new GuardedConnection(transport, limits, () => {});
    await new Promise((resolve) => connection.write(Buffer.from('abc'), resolve));
    expect(transport.writes).toEqual([Buffer.from('abc')]);
  });

  it('fails writes once the transport is gone', async () => {
    const transport = new RecordingTransport();
    const connection = new GuardedConnection(transport, limits, () => {});
    connection.on('error', () => {});
    transport.destroy();
    connection.cork();
    const results = [Buffer.from('a'), Buffer.from('b')].map(
      (chunk) => new Promise((resolve) => connection.write(chunk, resolve)),
    );
    connection.uncork();
    expect(await Promise.all(results)).toEqual([expect.any(Error), expect.any(Error)]);
    expect(transport.writes).toEqual([]);
  });
});
