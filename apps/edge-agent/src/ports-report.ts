import { matchesPort, type SerialPortInfo } from './sources/port-discovery.js';
import type { SourceConfig } from './sources/source-config.js';

/**
 * `outpost-agent ports`: every serial port with its stable by-id link and USB facts, and the
 * `serial:` source of agent.yaml bound to it (by path, by-id link, or `match` on USB ids).
 */
export interface BoundPort extends SerialPortInfo {
  /** The child device whose readings come from this port, per agent.yaml. */
  boundTo?: { device: string; parser: string; by: 'path' | 'match' };
}

export async function portBindings(
  ports: readonly SerialPortInfo[],
  sources: readonly SourceConfig[],
  resolve: (path: string) => Promise<string | undefined>,
): Promise<BoundPort[]> {
  const serial = sources.flatMap((s) => (s.kind === 'serial' ? [s.serial] : []));
  const resolved = new Map<string, string | undefined>();
  for (const s of serial) {
    if (s.port !== undefined) resolved.set(s.port, await resolve(s.port));
  }
  return ports.map((port) => {
    const out: BoundPort = { ...port };
    for (const s of serial) {
      const byPath =
        s.port !== undefined &&
        (s.port === port.path || s.port === port.byId || resolved.get(s.port) === port.path);
      const byMatch = s.match !== undefined && matchesPort(port, s.match);
      if (byPath || byMatch) {
        out.boundTo = { device: s.device, parser: s.parser.type, by: byPath ? 'path' : 'match' };
        break;
      }
    }
    return out;
  });
}

export function formatPorts(ports: readonly BoundPort[]): string {
  if (ports.length === 0) return 'no serial ports found\n';
  const rows = ports.map((p) => [
    p.path,
    p.byId ?? '-',
    p.vendorId !== undefined ? `${p.vendorId}:${p.productId ?? '????'}` : '-',
    p.serialNumber ?? '-',
    p.manufacturer ?? p.product ?? '-',
    p.boundTo === undefined ? '-' : `${p.boundTo.device} (${p.boundTo.parser}, by ${p.boundTo.by})`,
  ]);
  const header = ['PATH', 'BY-ID', 'VID:PID', 'SERIAL', 'MANUFACTURER', 'BOUND TO'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}
