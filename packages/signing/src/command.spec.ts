import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { signCommand, verifyCommand } from './command.js';
import { toJwks } from './jwks.js';
import { generateKeyPair } from './keys.js';
import { MemoryReplayCache } from './replay-cache.js';

const T = 1_700_000_000;
const now = () => T;
const ping = { v: 1, id: '0b7c1f7e-3c7a-4d7e-9a51-5d8f0f7c2a10', type: 'ping', exp: T + 60 };

describe.each(['Ed25519', 'P-256'] as const)('command signed by a %s service key', (type) => {
  it('verifies against the service JWKS (PROTOCOL.md §8)', async () => {
    const service = await generateKeyPair(type);
    const jwks = await toJwks([service.publicJwk]);
    const command = { ...ping, device: 'dev-1' };
    const jws = await signCommand(service.privateJwk, command);
    expect(decodeProtectedHeader(jws)).toMatchObject({ typ: 'outpost-command+jws' });
    await expect(verifyCommand(jws, { keys: jwks, deviceId: 'dev-1', now })).resolves.toMatchObject(
      { payload: command, kid: service.kid },
    );
  });
});

describe('verifyCommand', () => {
  it('lets a gateway accept commands for itself and its children', async () => {
    const service = await generateKeyPair();
    const jws = await signCommand(service.privateJwk, { ...ping, device: 'sensor-4' });
    const keys = [service.publicJwk];
    await expect(
      verifyCommand(jws, { keys, deviceId: ['gw-1', 'sensor-4'], now }),
    ).resolves.toBeDefined();
    await expect(verifyCommand(jws, { keys, deviceId: ['gw-1'], now })).rejects.toMatchObject({
      code: 'subject_mismatch',
    });
  });

  it('refuses a command without a target when a device is expected', async () => {
    const service = await generateKeyPair();
    const jws = await signCommand(service.privateJwk, ping);
    const keys = [service.publicJwk];
    await expect(verifyCommand(jws, { keys, now })).resolves.toBeDefined();
    await expect(verifyCommand(jws, { keys, deviceId: 'dev-1', now })).rejects.toMatchObject({
      code: 'subject_mismatch',
    });
  });

  it('honours exp with the clock skew', async () => {
    const service = await generateKeyPair();
    const jws = await signCommand(service.privateJwk, ping);
    const keys = [service.publicJwk];
    await expect(verifyCommand(jws, { keys, now: () => T + 119 })).resolves.toBeDefined();
    await expect(verifyCommand(jws, { keys, now: () => T + 120 })).rejects.toMatchObject({
      code: 'token_expired',
    });
    await expect(
      verifyCommand(jws, { keys, now: () => T + 70, clockSkewS: 0 }),
    ).rejects.toMatchObject({ code: 'token_expired' });
  });

  it('refuses a non-numeric exp', async () => {
    const service = await generateKeyPair();
    const jws = await signCommand(service.privateJwk, { ...ping, exp: 'later' as never });
    await expect(verifyCommand(jws, { keys: [service.publicJwk], now })).rejects.toMatchObject({
      code: 'payload_invalid',
    });
  });

  it('validates with the caller schema', async () => {
    const service = await generateKeyPair();
    const schema = z.object({ type: z.literal('reboot'), exp: z.number() });
    const jws = await signCommand(service.privateJwk, ping);
    await expect(
      verifyCommand(jws, { keys: [service.publicJwk], now, schema }),
    ).rejects.toMatchObject({ code: 'payload_invalid' });
    const reboot = await signCommand(service.privateJwk, { ...ping, type: 'reboot' });
    const { payload } = await verifyCommand(reboot, { keys: [service.publicJwk], now, schema });
    expect(payload.type).toBe('reboot');
  });

  it('accepts each command id once with a replay cache', async () => {
    const service = await generateKeyPair();
    const jws = await signCommand(service.privateJwk, ping);
    const options = { keys: [service.publicJwk], now, replayCache: new MemoryReplayCache({ now }) };
    await verifyCommand(jws, options);
    await expect(verifyCommand(jws, options)).rejects.toMatchObject({ code: 'jti_replayed' });
  });
});
