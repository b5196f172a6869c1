import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { generate } from 'selfsigned';
import type { IngestConfig } from '../config.js';

/**
 * TLS credentials for MQTT over TLS: the configured PEM files, or a self-signed development
 * certificate made once in `<data dir>/tls/` (key 0600). Devices pin it or a real one is
 * configured with INGEST_MQTT_TLS_CERT / INGEST_MQTT_TLS_KEY.
 */
export async function loadTlsCredentials(
  config: IngestConfig,
  log: Logger,
): Promise<{ key: string; cert: string }> {
  if (config.mqtt.tlsCertFile && config.mqtt.tlsKeyFile) {
    return {
      cert: await readFile(config.mqtt.tlsCertFile, 'utf8'),
      key: await readFile(config.mqtt.tlsKeyFile, 'utf8'),
    };
  }
  const dir = join(config.dataDir, 'tls');
  const keyPath = join(dir, 'dev-key.pem');
  const certPath = join(dir, 'dev-cert.pem');
  try {
    return { key: await readFile(keyPath, 'utf8'), cert: await readFile(certPath, 'utf8') };
  } catch {
    // Not made yet.
  }
  const host = config.mqtt.publicHost ?? 'localhost';
  const pems = await generate([{ name: 'commonName', value: host }], {
    keySize: 2048,
    notAfterDate: new Date(Date.now() + 825 * 24 * 3600 * 1000),
    algorithm: 'sha256',
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: host },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(keyPath, pems.private, { mode: 0o600 });
  await chmod(keyPath, 0o600);
  await writeFile(certPath, pems.cert, { mode: 0o644 });
  log.info({ cert: certPath }, 'created a self-signed development certificate for MQTT over TLS');
  return { key: pems.private, cert: pems.cert };
}
