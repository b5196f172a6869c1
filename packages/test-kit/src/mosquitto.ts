import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findBinary } from './binaries.js';
import { LOOPBACK } from './ports.js';
import { ManagedProcess, waitForTcp } from './process.js';
import {
  type PortServiceHandle,
  portServiceHandle,
  ServiceRunner,
  type StartOptions,
} from './service.js';

export interface MosquittoOptions extends StartOptions {
  /** Extra mosquitto.conf lines, e.g. `['max_packet_size 1024']`. */
  config?: readonly string[];
}

/** `url` is `mqtt://127.0.0.1:<port>`; anonymous access, no persistence. */
export type MosquittoHandle = PortServiceHandle;

export function mosquittoConfig(port: number, extra: readonly string[] = []): string {
  const lines = [
    `listener ${port} ${LOOPBACK}`,
    'allow_anonymous true',
    'persistence false',
    'log_dest stderr',
    'log_timestamp_format %Y-%m-%dT%H:%M:%S',
  ];
  // Started as root, mosquitto switches to the `mosquitto` user unless told to stay.
  if (process.getuid?.() === 0) lines.push('user root');
  return [...lines, ...extra, ''].join('\n');
}

/** A throwaway Mosquitto broker on 127.0.0.1: a non-JS MQTT peer. */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoHandle> {
  const binary = findBinary('mosquitto', options.lookup);
  const runner = await ServiceRunner.start(
    {
      name: 'mosquitto',
      async spawn({ port, dir, logPath }) {
        const configPath = join(dir, 'mosquitto.conf');
        await writeFile(configPath, mosquittoConfig(port, options.config));
        return ManagedProcess.start({
          name: 'mosquitto',
          command: binary,
          args: ['-c', configPath],
          cwd: dir,
          logPath,
        });
      },
      ready: (proc, { port, readyTimeoutMs }) =>
        waitForTcp(port, {
          what: `mosquitto on 127.0.0.1:${port}`,
          timeoutMs: readyTimeoutMs,
          process: proc,
        }),
    },
    options,
  );
  return portServiceHandle(runner, () => `mqtt://${LOOPBACK}:${runner.port}`);
}
