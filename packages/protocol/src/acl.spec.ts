import { describe, expect, it } from 'vitest';
import {
  type Actor,
  isPublishAllowed,
  isSubscribeAllowed,
  mayActFor,
  mayPublish,
  maySubscribe,
} from './acl.js';

const sensor: Actor = { deviceId: 'th-01', kind: 'device', children: [] };
const gateway: Actor = { deviceId: 'gw-1', kind: 'gateway', children: new Set(['th-01', 'th-02']) };
const gatewayWithArray: Actor = { deviceId: 'gw-1', kind: 'gateway', children: ['th-01'] };
/** A device that is not a gateway but has children listed gets nothing from them. */
const notAGateway: Actor = { deviceId: 'th-09', kind: 'device', children: ['th-01'] };

describe('mayPublish (PROTOCOL.md §4)', () => {
  it.each([
    [sensor, 'v1/devices/th-01/telemetry', true],
    [sensor, 'v1/devices/th-01/state', true],
    [sensor, 'v1/devices/th-01/events', true],
    [gateway, 'v1/devices/gw-1/telemetry', true],
    [gateway, 'v1/devices/th-01/telemetry', true],
    [gateway, 'v1/devices/th-02/state', true],
    [gateway, 'v1/devices/th-02/events', true],
    [gatewayWithArray, 'v1/devices/th-01/events', true],
  ])('allows %o → %s', (actor, topic) => {
    expect(mayPublish(actor, topic)).toEqual({ ok: true });
    expect(isPublishAllowed(actor, topic)).toBe(true);
  });

  it.each([
    [sensor, 'v1/devices/th-01/commands', 'wrong_direction'],
    [gateway, 'v1/devices/th-01/commands', 'wrong_direction'],
    [sensor, 'v1/devices/th-02/telemetry', 'not_own_topic'],
    [notAGateway, 'v1/devices/th-01/telemetry', 'not_own_topic'],
    [gateway, 'v1/devices/th-03/telemetry', 'not_child'],
    [gatewayWithArray, 'v1/devices/th-02/telemetry', 'not_child'],
    [sensor, 'v1/devices/+/telemetry', 'wildcard'],
    [sensor, 'v1/devices/th-01/#', 'wildcard'],
    [sensor, 'v1/devices/th-01/telemetry/x', 'bad_topic'],
    [sensor, 'v1/devices/TH-01/telemetry', 'bad_topic'],
    [sensor, 'v1/devices/th-01/config', 'bad_topic'],
    [sensor, 'th-01/telemetry', 'bad_topic'],
    [sensor, '', 'bad_topic'],
    [sensor, 'v1/devices/th-01/state\u0000', 'bad_topic'],
    [sensor, `v1/devices/th-01/${'x'.repeat(300)}`, 'bad_topic'],
  ])('denies %o → %s (%s)', (actor, topic, reason) => {
    expect(mayPublish(actor, topic)).toEqual({ ok: false, reason });
    expect(isPublishAllowed(actor, topic)).toBe(false);
  });
});

describe('maySubscribe (PROTOCOL.md §4)', () => {
  it.each([
    [sensor, 'v1/devices/th-01/commands'],
    [gateway, 'v1/devices/gw-1/commands'],
    [gateway, 'v1/devices/th-01/commands'],
    [gatewayWithArray, 'v1/devices/th-01/commands'],
  ])('allows %o → %s', (actor, filter) => {
    expect(maySubscribe(actor, filter)).toEqual({ ok: true });
    expect(isSubscribeAllowed(actor, filter)).toBe(true);
  });

  it.each([
    [sensor, 'v1/devices/th-01/telemetry', 'wrong_direction'],
    [sensor, 'v1/devices/th-01/state', 'wrong_direction'],
    [gateway, 'v1/devices/th-01/events', 'wrong_direction'],
    [sensor, 'v1/devices/th-02/commands', 'not_own_topic'],
    [notAGateway, 'v1/devices/th-01/commands', 'not_own_topic'],
    [gateway, 'v1/devices/th-03/commands', 'not_child'],
    [sensor, '#', 'wildcard'],
    [sensor, 'v1/devices/+/commands', 'wildcard'],
    [sensor, 'v1/devices/th-01/+', 'wildcard'],
    [gateway, 'v1/devices/#', 'wildcard'],
    [sensor, 'v1/devices/th-01/commands/', 'bad_topic'],
    [sensor, '$share/g/v1/devices/th-01/commands', 'bad_topic'],
  ])('denies %o → %s (%s)', (actor, filter, reason) => {
    expect(maySubscribe(actor, filter)).toEqual({ ok: false, reason });
    expect(isSubscribeAllowed(actor, filter)).toBe(false);
  });
});

describe('mayActFor', () => {
  it.each([
    [sensor, 'th-01', true],
    [sensor, 'th-02', false],
    [gateway, 'gw-1', true],
    [gateway, 'th-02', true],
    [gateway, 'th-03', false],
    [notAGateway, 'th-01', false],
  ])('%o for %s → %s', (actor, deviceId, ok) => {
    expect(mayActFor(actor, deviceId)).toBe(ok);
  });
});
