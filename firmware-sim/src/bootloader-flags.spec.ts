import { describe, expect, it } from 'vitest';
import { type BootloaderFlags, bootloaderFromFlags } from './bootloader-flags.js';
import { type SerialDeviceConfig, scenarioFromObject } from './scenario.js';

/** The bootloader options a device gets from these flags, through the scenario schema. */
function optionsOf(flags: BootloaderFlags): SerialDeviceConfig['bootloader'] {
  const scenario = scenarioFromObject({
    devices: [
      {
        id: 'sim-1',
        serial: 'SIM0001',
        hardware: 'sim-th',
        firmware: '1.0.0',
        pty: true,
        metrics: { t: 'const:1' },
        bootloader: bootloaderFromFlags(flags),
      },
    ],
  });
  const device = scenario.devices[0]!;
  if (device.transport !== 'serial') throw new Error('expected a serial device');
  return device.bootloader;
}

describe('bootloaderFromFlags', () => {
  it.each<[string, BootloaderFlags, SerialDeviceConfig['bootloader']]>([
    ['no flags', {}, {}],
    ['bad flash, every time', { failFlash: 'verify' }, { failFlash: { kind: 'verify' } }],
    [
      'bad flash, once',
      { failFlash: 'verify', failFlashTimes: 1 },
      { failFlash: { kind: 'verify', times: 1 } },
    ],
    [
      'a chunk that fails to write, twice',
      { failFlash: '4096', failFlashTimes: 2 },
      { failFlash: { kind: 'write', atOffset: 4096, times: 2 } },
    ],
    ['failing health', { failHealth: 1500 }, { failHealth: { afterMs: 1500 } }],
    [
      'failing health, once',
      { failHealth: 1500, failHealthTimes: 1 },
      { failHealth: { afterMs: 1500, times: 1 } },
    ],
    [
      'a slow link, a long reboot, a small flash',
      { slowMs: 250, rebootMs: 2000, maxImageBytes: 65_536 },
      { slowMs: 250, rebootMs: 2000, maxImageBytes: 65_536 },
    ],
  ])('%s', (_name, flags, expected) => {
    expect(optionsOf(flags)).toEqual(expected);
  });

  it.each<[BootloaderFlags, RegExp]>([
    [{ failFlash: 'sometimes' }, /expected verify or a byte offset/],
    [{ failFlash: '-1' }, /expected verify or a byte offset/],
    [{ failFlashTimes: 1 }, /needs --fail-flash/],
    [{ failHealthTimes: 1 }, /needs --fail-health/],
  ])('refuses %j', (flags, message) => {
    expect(() => bootloaderFromFlags(flags)).toThrow(message);
  });
});
