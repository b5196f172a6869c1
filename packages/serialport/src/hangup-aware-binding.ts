import { readSync } from 'node:fs';
import { SerialPort } from 'serialport';

/**
 * serialport's platform binding with one fix: its Unix reader retries a read(2) that
 * returns 0 bytes forever (serialport/bindings-cpp#162). A pty whose other side went away
 * (socat killed) or an unplugged USB adapter returns exactly that, so the stock port spins
 * without ever emitting `close`. Here a zero-byte read is a disconnect: the port closes
 * with `disconnected: true`, like the binding's other disconnect errors.
 *
 * And one saving: the binding opens ports with O_NONBLOCK, so a read(2) returns at once,
 * with bytes or EAGAIN. The stock reader still sends each read through the libuv
 * threadpool, two round trips per burst of bytes (the data, then the EAGAIN that waits for
 * the poller); reading on the event loop skips both, which at 1,000 lines/s from 10 ports
 * is most of the agent's CPU for its sources.
 */

type Binding = typeof SerialPort.binding;
type PortBinding = Awaited<ReturnType<Binding['open']>>;
type OpenOptions = Parameters<Binding['open']>[0];

/** The parts of the Unix port binding the read loop needs. */
interface UnixPort {
  fd: number | null;
  readonly isOpen: boolean;
  poller: { once(event: 'readable', callback: (err?: Error | null) => void): unknown };
}

function isUnixPort(port: unknown): port is UnixPort {
  const p = port as Partial<UnixPort>;
  return typeof p.fd === 'number' && typeof p.poller?.once === 'function';
}

class BindingError extends Error {
  readonly canceled: boolean;
  readonly disconnect: boolean;

  constructor(message: string, flags: { canceled?: boolean; disconnect?: boolean }) {
    super(message);
    this.canceled = flags.canceled === true;
    this.disconnect = flags.disconnect === true;
  }
}

const RETRY_CODES = new Set(['EAGAIN', 'EWOULDBLOCK', 'EINTR']);
/**
 * Reads in a row that found bytes waiting before one yields to the event loop: a sender
 * faster than the reader (a flooded pty) must not keep timers and sockets waiting.
 */
const READS_BEFORE_YIELD = 64;
const readsInARow = new WeakMap<UnixPort, number>();

async function readUnix(
  port: UnixPort,
  buffer: Buffer,
  offset: number,
  length: number,
): Promise<{ bytesRead: number; buffer: Buffer }> {
  const streak = (readsInARow.get(port) ?? 0) + 1;
  readsInARow.set(port, streak % READS_BEFORE_YIELD);
  if (streak === READS_BEFORE_YIELD) await new Promise((resolve) => setImmediate(resolve));
  for (;;) {
    const fd = port.fd;
    if (!port.isOpen || fd === null) throw new BindingError('Port is not open', { canceled: true });
    try {
      // Never blocks: the descriptor is non-blocking (serialport_unix.cpp opens O_NONBLOCK).
      const bytesRead = readSync(fd, buffer, offset, length, null);
      // read(2) returns 0 at end of file: the other side hung up.
      if (bytesRead === 0) throw new BindingError('end of file', { disconnect: true });
      return { bytesRead, buffer };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === undefined || !RETRY_CODES.has(code)) throw err;
      if (!port.isOpen) throw new BindingError('Port is not open', { canceled: true });
      readsInARow.set(port, 0);
      await new Promise<void>((resolve, reject) =>
        port.poller.once('readable', (error) => (error ? reject(error) : resolve())),
      );
    }
  }
}

const openStock = SerialPort.binding.open.bind(SerialPort.binding) as (
  options: OpenOptions,
) => Promise<PortBinding>;

/** The platform binding whose ports close when the other side hangs up. */
export const hangupAwareBinding = {
  ...SerialPort.binding,
  async open(options: OpenOptions) {
    const port = await openStock(options);
    if (isUnixPort(port)) {
      const unix = port;
      port.read = (buffer, offset, length) => readUnix(unix, buffer, offset, length);
    }
    return port;
  },
} as Binding;

/** A closed SerialPort on `path` whose reads end in `close` when the other side hangs up. */
export function createSerialPort(path: string, baudRate: number): SerialPort {
  // serialport's typings leave `binding` out of the options its constructor takes.
  return new SerialPort({
    path,
    baudRate,
    autoOpen: false,
    binding: hangupAwareBinding,
  } as ConstructorParameters<typeof SerialPort>[0]);
}
