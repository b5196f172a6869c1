import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type DiscoveryFs, matchesPort, normalizeUsbId, PortDiscovery } from './port-discovery.js';

/** An in-memory tree of files, symlinks (relative or absolute) and bare directories. */
function fakeFs(tree: {
  files?: Record<string, string>;
  links?: Record<string, string>;
  dirs?: string[];
}): DiscoveryFs {
  const files = new Map(Object.entries(tree.files ?? {}));
  const links = new Map(Object.entries(tree.links ?? {}));
  const paths = [...files.keys(), ...links.keys(), ...(tree.dirs ?? [])];
  const enoent = (path: string) => Object.assign(new Error(`ENOENT ${path}`), { code: 'ENOENT' });
  const exists = (path: string) =>
    path === '/' || paths.some((p) => p === path || p.startsWith(`${path}/`));

  const resolve = (path: string, hops = 0): string => {
    if (hops > 40) throw new Error('ELOOP');
    let current = '/';
    const parts = path.split('/').filter(Boolean);
    for (let i = 0; i < parts.length; i++) {
      const next = posix.join(current, parts[i]!);
      const target = links.get(next);
      if (target !== undefined) {
        const rest = parts.slice(i + 1).join('/');
        return resolve(posix.join(posix.resolve(current, target), rest), hops + 1);
      }
      if (!exists(next)) throw enoent(next);
      current = next;
    }
    return current;
  };

  return {
    async realpath(path) {
      return resolve(path);
    },
    async readFile(path) {
      const content = files.get(resolve(path));
      if (content === undefined) throw enoent(path);
      return content;
    },
    async readdir(path) {
      const dir = resolve(path);
      const names = new Set<string>();
      for (const p of paths) {
        if (p.startsWith(`${dir}/`)) names.add(p.slice(dir.length + 1).split('/')[0]!);
      }
      if (names.size === 0 && !exists(dir)) throw enoent(path);
      return [...names];
    },
  };
}

const FTDI = '/sys/devices/pci0/usb1/1-2';
const ACM = '/sys/devices/pci0/usb1/1-3';

/** A gateway with an FTDI adapter, a CDC-ACM board, an on-board UART and a console. */
const machine = fakeFs({
  files: {
    [`${FTDI}/idVendor`]: '0403\n',
    [`${FTDI}/idProduct`]: '6001\n',
    [`${FTDI}/serial`]: 'A10K3Z\n',
    [`${FTDI}/manufacturer`]: 'FTDI\n',
    [`${FTDI}/product`]: 'FT232R USB UART\n',
    [`${ACM}/idVendor`]: '2341\n',
    [`${ACM}/idProduct`]: '0043\n',
    [`${ACM}/serial`]: '\n', // empty: no serial number
  },
  links: {
    '/sys/class/tty/ttyUSB0': '../../devices/pci0/usb1/1-2/1-2:1.0/ttyUSB0/tty/ttyUSB0',
    [`${FTDI}/1-2:1.0/ttyUSB0/tty/ttyUSB0/device`]: '../../../ttyUSB0',
    '/sys/class/tty/ttyACM0': '../../devices/pci0/usb1/1-3/1-3:1.0/tty/ttyACM0',
    [`${ACM}/1-3:1.0/tty/ttyACM0/device`]: '../../../1-3:1.0',
    '/sys/class/tty/ttyS0': '../../devices/platform/serial8250/tty/ttyS0',
    '/sys/devices/platform/serial8250/tty/ttyS0/device': '../../../serial8250',
    '/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K3Z-if00-port0': '../../ttyUSB0',
    '/dev/serial/by-id/usb-gone-if00': '../../ttyUSB9', // dangling: just unplugged
  },
  dirs: ['/sys/class/tty/tty0', '/dev/ttyUSB0', '/dev/ttyACM0', '/dev/ttyS0'],
});

describe('PortDiscovery without udevadm (sysfs and /dev/serial/by-id)', () => {
  const failingList = async () => {
    throw new Error('spawn udevadm ENOENT');
  };

  it('lists USB serial ports with ids, serial numbers and by-id links', async () => {
    const discovery = new PortDiscovery({ fs: machine, list: failingList });
    expect(await discovery.list()).toEqual([
      { path: '/dev/ttyACM0', vendorId: '2341', productId: '0043' },
      {
        path: '/dev/ttyUSB0',
        byId: '/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K3Z-if00-port0',
        vendorId: '0403',
        productId: '6001',
        serialNumber: 'A10K3Z',
        manufacturer: 'FTDI',
        product: 'FT232R USB UART',
      },
    ]);
  });

  it('finds a port by vendor, product and serial number', async () => {
    const discovery = new PortDiscovery({ fs: machine, list: null });
    const found = await discovery.find({
      vendorId: '0x0403',
      productId: '6001',
      serialNumber: 'A10K3Z',
    });
    expect(found?.path).toBe('/dev/ttyUSB0');
    expect(
      await discovery.find({ vendorId: '403', productId: '6001', serialNumber: 'OTHER' }),
    ).toBeUndefined();
    expect((await discovery.find({ vendorId: '2341', productId: '43' }))?.path).toBe(
      '/dev/ttyACM0',
    );
  });

  it('resolves a by-id link to its device node, and undefined once it is gone', async () => {
    const discovery = new PortDiscovery({ fs: machine, list: null });
    expect(
      await discovery.resolvePath('/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K3Z-if00-port0'),
    ).toBe('/dev/ttyUSB0');
    expect(await discovery.resolvePath('/dev/serial/by-id/usb-gone-if00')).toBeUndefined();
  });

  it('returns nothing, without throwing, on a machine without sysfs', async () => {
    const discovery = new PortDiscovery({ fs: fakeFs({}), list: failingList });
    expect(await discovery.list()).toEqual([]);
  });
});

describe('PortDiscovery with SerialPort.list()', () => {
  it('takes its answer and adds the by-id links', async () => {
    const discovery = new PortDiscovery({
      fs: machine,
      list: async () => [
        { path: '/dev/ttyUSB0', vendorId: '0403', productId: '6001', serialNumber: 'A10K3Z' },
        { path: '/dev/ttyS0' },
      ],
    });
    expect(await discovery.list()).toEqual([
      { path: '/dev/ttyS0' },
      {
        path: '/dev/ttyUSB0',
        byId: '/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K3Z-if00-port0',
        vendorId: '0403',
        productId: '6001',
        serialNumber: 'A10K3Z',
      },
    ]);
  });
});

describe('matchesPort', () => {
  const port = { path: '/dev/ttyUSB0', vendorId: '0403', productId: '6001', serialNumber: 'A1' };
  it.each([
    [{ vendorId: '0403', productId: '6001' }, true],
    [{ vendorId: '0x0403', productId: '6001', serialNumber: 'A1' }, true],
    [{ vendorId: '403', productId: '6001' }, true],
    [{ vendorId: '0403', productId: '6015' }, false],
    [{ vendorId: '0403', productId: '6001', serialNumber: 'a1' }, false],
  ])('%j → %s', (match, expected) => {
    expect(matchesPort(port, match)).toBe(expected);
  });

  it('never matches a port without USB ids', () => {
    expect(matchesPort({ path: '/dev/ttyS0' }, { vendorId: '0', productId: '0' })).toBe(false);
  });

  it('normalizes ids', () => {
    expect(normalizeUsbId('0x6A')).toBe('006a');
  });
});
