import { type DynamicModule, Module, type Type } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { LoggerModule } from 'nestjs-pino';
import { ALERT_CONTROLLERS, ALERT_PROVIDERS } from './alerts/alert-providers.js';
import { AccessGuard } from './auth/access.guard.js';
import { DeviceTokens } from './auth/device-tokens.js';
import { Broker } from './broker/broker.js';
import { LostSessions } from './broker/lost-sessions.js';
import { type CoreDeps, CoreModule } from './core.module.js';
import { DashboardController } from './dashboard/dashboard.controller.js';
import { DesiredConfigSender } from './devices/desired-config.js';
import { DevicesController } from './devices/devices.controller.js';
import { DevicesService } from './devices/devices.service.js';
import { EnrollmentService } from './devices/enrollment.service.js';
import { EnrollmentsController } from './devices/enrollments.controller.js';
import { HealthController } from './health/health.controller.js';
import { DocsController, OPENAPI_DOCUMENT } from './http/docs.controller.js';
import { buildOpenApi } from './http/openapi.js';
import { OTA_CONTROLLERS, OTA_PROVIDERS } from './ota/ota-providers.js';
import { LiveEvents } from './stream/live-events.js';
import { LiveStream } from './stream/live-stream.js';
import { StreamController } from './stream/stream.controller.js';
import { TelemetryController } from './telemetry/telemetry.controller.js';
import { TELEMETRY_OUTBOX, TelemetryService } from './telemetry/telemetry.service.js';
import { TelemetryPipeline } from './telemetry/telemetry-pipeline.js';
import { TELEMETRY_STORE } from './telemetry/telemetry-store.js';
import { TokensController } from './tokens/tokens.controller.js';
import { TokensService } from './tokens/tokens.service.js';

export const VERSION = '0.1.0';

/** Every controller, in the order the OpenAPI document lists them. */
export const CONTROLLERS: Type[] = [
  HealthController,
  EnrollmentsController,
  DevicesController,
  TelemetryController,
  StreamController,
  ...ALERT_CONTROLLERS,
  ...OTA_CONTROLLERS,
  TokensController,
  DocsController,
  // Last: its catch-all GET serves the app's client routes (no OpenAPI entries).
  DashboardController,
];

@Module({})
export class AppModule {
  static forRoot(deps: CoreDeps): DynamicModule {
    return {
      module: AppModule,
      imports: [
        CoreModule.forRoot(deps),
        LoggerModule.forRoot({
          pinoHttp: {
            logger: deps.logger,
            // Requests are logged at debug unless they fail: no log line per telemetry post.
            customLogLevel: (_req, res, err) =>
              err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'debug',
            autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/metrics' },
            redact: ['req.headers.authorization', 'req.headers.cookie'],
          },
        }),
      ],
      controllers: CONTROLLERS,
      providers: [
        { provide: OPENAPI_DOCUMENT, useFactory: () => buildOpenApi(CONTROLLERS, VERSION) },
        { provide: APP_GUARD, useClass: AccessGuard },
        TokensService,
        DeviceTokens,
        DevicesService,
        EnrollmentService,
        LiveEvents,
        LiveStream,
        LostSessions,
        TelemetryPipeline,
        {
          provide: TELEMETRY_STORE,
          useFactory: (p: TelemetryPipeline) => p.store,
          inject: [TelemetryPipeline],
        },
        {
          provide: TELEMETRY_OUTBOX,
          useFactory: (p: TelemetryPipeline) => p.outbox,
          inject: [TelemetryPipeline],
        },
        TelemetryService,
        Broker,
        DesiredConfigSender,
        ...ALERT_PROVIDERS,
        ...OTA_PROVIDERS,
      ],
    };
  }
}
