import { readdir, readFile, realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import { SerialPort } from 'serialport';

/**
 * Finds serial ports and what is plugged into them (`outpost-agent ports`, and binding a
 * port by USB vendor/product/serial). Device names like `ttyUSB0` reorder on replug, so a
 * port is bound by its `/dev/serial/by-id/...` link or by USB ids, and resolved again
 * before every open.
 *
 * `SerialPort.list()` asks `udevadm`; where that is missing (containers, minimal images)
 * it fails, and the same facts are read from sysfs and `/dev/serial/by-id` instead.
 */

export interface SerialPortInfo {
  /** The device node, e.g. `/dev/ttyUSB0`. */
  path: string;
  /** Its stable `/dev/serial/by-id/...` link, if udev made one. */
  byId?: string;
  /** Lower-case hex, as in `lsusb` (`0403`). */
  vendorId?: string;
  productId?: string;
  serialNumber?: string;
  manufacturer?: string;
  product?: string;
}

export interface PortMatch {
  vendorId: string;
  productId: string;
  serialNumber?: string | undefined;
}

/** The file system calls discovery makes; injected so a fake sysfs tree can stand in. */
export interface DiscoveryFs {
  readdir(path: string): Promise<string[]>;
  realpath(path: string): Promise<string>;
  readFile(path: string): Promise<string>;
}

export interface PortDiscoveryOptions {
  fs?: DiscoveryFs;
  /** `SerialPort.list`; pass `null` to read sysfs only. */
  list?: (() => Promise<ListedPort[]>) | null;
  sysRoot?: string;
  devRoot?: string;
}

/** What `SerialPort.list()` returns. */
export interface ListedPort {
  path: string;
  manufacturer?: string | undefined;
  serialNumber?: string | undefined;
  pnpId?: string | undefined;
  vendorId?: string | undefined;
  productId?: string | undefined;
}

const nodeFs: DiscoveryFs = {
  readdir: (path) => readdir(path),
  realpath: (path) => realpath(path),
  readFile: (path) => readFile(path, 'utf8'),
};

/** How far up from a tty's device directory the USB device (with `idVendor`) may be. */
const MAX_USB_ANCESTRY = 6;

export function normalizeUsbId(id: string): string {
  return id.trim().toLowerCase().replace(/^0x/, '').padStart(4, '0');
}

/** Whether a port is the USB device `match` names (ids compared as hex, case-insensitive). */
export function matchesPort(info: SerialPortInfo, match: PortMatch): boolean {
  if (info.vendorId === undefined || info.productId === undefined) return false;
  if (normalizeUsbId(info.vendorId) !== normalizeUsbId(match.vendorId)) return false;
  if (normalizeUsbId(info.productId) !== normalizeUsbId(match.productId)) return false;
  return match.serialNumber === undefined || info.serialNumber === match.serialNumber;
}

export class PortDiscovery {
  readonly #fs: DiscoveryFs;
  readonly #list: (() => Promise<ListedPort[]>) | null;
  readonly #sysRoot: string;
  readonly #devRoot: string;

  constructor(options: PortDiscoveryOptions = {}) {
    this.#fs = options.fs ?? nodeFs;
    this.#list = options.list === undefined ? () => SerialPort.list() : options.list;
    this.#sysRoot = options.sysRoot ?? '/sys';
    this.#devRoot = options.devRoot ?? '/dev';
  }

  /** Every serial port with USB facts, sorted by path. Never throws. */
  async list(): Promise<SerialPortInfo[]> {
    const byId = await this.#byIdLinks();
    let ports: SerialPortInfo[] | undefined;
    if (this.#list !== null) {
      try {
        ports = (await this.#list()).map((p) => fromListed(p));
      } catch {
        ports = undefined; // no udevadm: read sysfs below
      }
    }
    ports ??= await this.#scanSysfs();
    const seen = new Set(ports.map((p) => p.path));
    // A by-id link whose target sysfs did not show (unusual drivers) is still a port.
    for (const [target, link] of byId) {
      if (!seen.has(target)) ports.push({ path: target, byId: link });
    }
    for (const port of ports) {
      const link = byId.get(port.path);
      if (link !== undefined) port.byId = link;
    }
    return ports.sort((a, b) => a.path.localeCompare(b.path));
  }

  /** The device node behind `path` (symlinks followed), or undefined while it is absent. */
  async resolvePath(path: string): Promise<string | undefined> {
    try {
      return await this.#fs.realpath(path);
    } catch {
      return undefined;
    }
  }

  /** The port `match` names, preferring its by-id link; undefined if none is plugged in. */
  async find(match: PortMatch): Promise<SerialPortInfo | undefined> {
    const ports = await this.list();
    return ports.find((port) => matchesPort(port, match));
  }

  /** device node → its `/dev/serial/by-id` link. */
  async #byIdLinks(): Promise<Map<string, string>> {
    const dir = posix.join(this.#devRoot, 'serial', 'by-id');
    const links = new Map<string, string>();
    let names: string[];
    try {
      names = await this.#fs.readdir(dir);
    } catch {
      return links;
    }
    for (const name of names.sort()) {
      const link = posix.join(dir, name);
      try {
        links.set(await this.#fs.realpath(link), link);
      } catch {
        // dangling link: the adapter was just unplugged
      }
    }
    return links;
  }

  async #scanSysfs(): Promise<SerialPortInfo[]> {
    const classDir = posix.join(this.#sysRoot, 'class', 'tty');
    let names: string[];
    try {
      names = await this.#fs.readdir(classDir);
    } catch {
      return [];
    }
    const ports: SerialPortInfo[] = [];
    for (const name of names) {
      let device: string;
      try {
        device = await this.#fs.realpath(posix.join(classDir, name, 'device'));
      } catch {
        continue; // virtual terminals and ptys have no device
      }
      const usb = await this.#usbAncestor(device);
      if (usb === undefined) continue;
      ports.push({ path: posix.join(this.#devRoot, name), ...usb });
    }
    return ports;
  }

  async #usbAncestor(device: string): Promise<Omit<SerialPortInfo, 'path'> | undefined> {
    let dir = device;
    for (let i = 0; i < MAX_USB_ANCESTRY && dir.startsWith(this.#sysRoot); i++) {
      const vendorId = await this.#attr(dir, 'idVendor');
      if (vendorId !== undefined) {
        const info: Omit<SerialPortInfo, 'path'> = { vendorId: normalizeUsbId(vendorId) };
        const productId = await this.#attr(dir, 'idProduct');
        if (productId !== undefined) info.productId = normalizeUsbId(productId);
        const serialNumber = await this.#attr(dir, 'serial');
        if (serialNumber !== undefined) info.serialNumber = serialNumber;
        const manufacturer = await this.#attr(dir, 'manufacturer');
        if (manufacturer !== undefined) info.manufacturer = manufacturer;
        const product = await this.#attr(dir, 'product');
        if (product !== undefined) info.product = product;
        return info;
      }
      dir = posix.dirname(dir);
    }
    return undefined;
  }

  async #attr(dir: string, name: string): Promise<string | undefined> {
    try {
      const value = (await this.#fs.readFile(posix.join(dir, name))).trim();
      return value.length > 0 ? value : undefined;
    } catch {
      return undefined;
    }
  }
}

function fromListed(port: ListedPort): SerialPortInfo {
  const info: SerialPortInfo = { path: port.path };
  if (port.vendorId) info.vendorId = normalizeUsbId(port.vendorId);
  if (port.productId) info.productId = normalizeUsbId(port.productId);
  if (port.serialNumber) info.serialNumber = port.serialNumber;
  if (port.manufacturer) info.manufacturer = port.manufacturer;
  return info;
}
