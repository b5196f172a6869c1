import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger as NestPinoLogger } from 'nestjs-pino';
import { type Logger, pino } from 'pino';
import { AppModule } from './app.module.js';
import type { IngestConfig } from './config.js';
import type { CoreDeps } from './core.module.js';
import { ProblemDetailsFilter } from './http/problem-details.filter.js';

export function createLogger(config: IngestConfig): Logger {
  return pino({
    level: config.logLevel,
    // Replicas of one deployment are told apart by `replica` (INGEST_REPLICA_ID).
    base: { service: 'outpost-ingest', replica: config.replicaId },
    redact: {
      paths: ['token', '*.token', 'password', '*.password', 'authorization', '*.authorization'],
      censor: '[redacted]',
    },
  });
}

/** Builds the ingest application (not yet listening). Used by `main.ts` and by tests. */
export async function createApp(
  deps: Omit<CoreDeps, 'logger'> & { logger?: Logger },
): Promise<NestFastifyApplication> {
  const logger = deps.logger ?? createLogger(deps.config);
  const adapter = new FastifyAdapter({
    bodyLimit: Math.max(deps.config.limits.maxMessageBytes, deps.config.limits.importMaxBytes),
    // Answer client errors (bad JSON, oversized bodies) through our problem-details filter.
    return503OnClosing: true,
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot({ ...deps, logger }),
    adapter,
    { bufferLogs: true, abortOnError: false },
  );
  app.useLogger(app.get(NestPinoLogger));
  app.useGlobalFilters(new ProblemDetailsFilter(logger));
  const fastify = app.getHttpAdapter().getInstance();
  // Non-JSON bodies: CSV imports now; JWS and SenML telemetry with the ingest pipeline.
  fastify.addContentTypeParser(
    ['text/csv', 'text/plain'],
    { parseAs: 'string', bodyLimit: deps.config.limits.importMaxBytes },
    (_req, body, done) => done(null, body),
  );
  // Telemetry over HTTP (PROTOCOL.md §5): the body is kept as bytes for the JWS check.
  fastify.addContentTypeParser(
    ['application/jose', 'application/senml+json'],
    { parseAs: 'buffer', bodyLimit: deps.config.limits.maxMessageBytes },
    (_req, body, done) => done(null, body),
  );
  // Firmware uploads (ota/): the body stays a stream, hashed and counted as it goes to disk.
  fastify.addContentTypeParser('application/octet-stream', (_req, payload, done) =>
    done(null, payload),
  );
  app.enableShutdownHooks();
  return app;
}
