#!/usr/bin/env node
import { isAppError } from '@outpost/protocol/errors';
import { createApp, createLogger } from './app.js';
import { loadConfig, redactedConfig } from './config.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config);
  logger.info({ config: redactedConfig(config) }, 'starting');
  const app = await createApp({ config, logger });
  await app.listen({ port: config.http.port, host: config.http.host });
  const shown =
    config.http.host === '0.0.0.0' || config.http.host === '::' ? 'localhost' : config.http.host;
  const url = config.http.publicUrl ?? `http://${shown}:${config.http.port}`;
  logger.info({ url, docs: `${url}/api/docs` }, 'ingest ready');
  process.stdout.write(
    `\nOutpost ingest is running.\n  API and docs: ${url}/api/docs\n  data:         ${config.dataDir}\n` +
      (config.bootstrapToken ? '' : `  admin token:  ${config.dataDir}/admin-token\n`) +
      '\n',
  );
}

main().catch((err: unknown) => {
  if (isAppError(err) && err.code === 'config_invalid') {
    process.stderr.write(`${err.message}\n`);
  } else {
    process.stderr.write(
      `ingest failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  }
  process.exit(1);
});
