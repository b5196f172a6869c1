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
});
