import { type PtyPairHandle, ptyPair } from '@outpost/test-kit/socat-pty';
import { afterEach, describe, expect, it } from 'vitest';
import { createSerialPort } from '../src/hangup-aware-binding.js';

// Real parts: socat's pty pair and serialport's native binding.

let pair: PtyPairHandle | undefined;
afterEach(async () => {
  await pair?.stop();
  pair = undefined;
});

describe('hangupAwareBinding', () => {
  it('reads what the other side writes, and closes as disconnected when it hangs up', async () => {
    pair = await ptyPair();
    const device = createSerialPort(pair.devicePath, 115200);
    const app = createSerialPort(pair.appPath, 115200);
    await new Promise<void>((resolve, reject) =>
      device.open((err) => (err ? reject(err) : resolve())),
    );
    await new Promise<void>((resolve, reject) =>
      app.open((err) => (err ? reject(err) : resolve())),
    );
    const received = new Promise<string>((resolve) =>
      app.once('data', (d: Buffer) => resolve(d.toString())),
    );
    device.write('R t=21.5\n');
    expect(await received).toBe('R t=21.5\n');
    device.close();

    const closed = new Promise<{ disconnected?: boolean } | null>((resolve) =>
      app.once('close', (err: { disconnected?: boolean } | null) => resolve(err)),
    );
    await pair.unplug();
    expect(await closed).toMatchObject({ disconnected: true });
  });

  it('reads a flood whole and in order, and keeps the event loop turning meanwhile', async () => {
    pair = await ptyPair();
    const device = createSerialPort(pair.devicePath, 115200);
    const app = createSerialPort(pair.appPath, 115200);
    for (const port of [device, app]) {
      await new Promise<void>((resolve, reject) =>
        port.open((err) => (err ? reject(err) : resolve())),
      );
    }
    const lines = Array.from({ length: 20_000 }, (_, i) => `R n=${i}\n`).join('');
    const expected = Buffer.byteLength(lines);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const chunks: Buffer[] = [];
    let size = 0;
    const all = new Promise<void>((resolve) =>
      app.on('data', (d: Buffer) => {
        chunks.push(d);
        size += d.length;
        if (size >= expected) resolve();
      }),
    );
    device.write(lines);
    await all;
    clearInterval(timer);
    expect(Buffer.concat(chunks).toString()).toBe(lines);
    expect(ticks).toBeGreaterThan(0);
    device.close();
    app.close();
  });
});
