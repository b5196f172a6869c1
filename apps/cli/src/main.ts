#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ApiClient } from './api-client.js';
import { registerAlertCommands } from './commands/alerts.js';
import { registerDeviceCommands } from './commands/device.js';
import { registerFirmwareCommands } from './commands/firmware.js';
import { registerKeysCommands } from './commands/keys.js';
import { registerLoginCommand } from './commands/login.js';
import { registerRolloutCommands } from './commands/rollout.js';
import { registerTelemetryCommands } from './commands/telemetry.js';
import { registerTokenCommands } from './commands/tokens.js';
import {
  type Environment,
  readEnvironment,
  readProfile,
  resolveConnection,
  type TokenSource,
} from './config.js';
import { type CliContext, globalsOf } from './context.js';
import { CliError, errorLine } from './errors.js';
import { apiTokenSchema, parser, serverUrlSchema } from './flags.js';
import { Output, type TextSink } from './output.js';

/** The composition root of `outpost`: wires the commands and turns failures into exit codes. */

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

interface Io {
  stdout: TextSink;
  stderr: TextSink;
  env: Readonly<Record<string, string | undefined>>;
  now: () => number;
}

function buildProgram(io: Io): Command {
  let environment: Environment | undefined;
  const ctx: CliContext = {
    environment: () => {
      environment ??= readEnvironment(io.env);
      return environment;
    },
    now: io.now,
    output: (command) => new Output(io.stdout, io.stderr, globalsOf(command).json === true),
    clientFor: (url, token, tokenSource) => client(url, token, tokenSource),
    client: async (command) => {
      const globals = globalsOf(command);
      const env = ctx.environment();
      // The profile is read only when flags and environment leave something open.
      const complete = (globals.url ?? env.url) && (globals.token ?? env.token);
      const profile = complete ? undefined : await readProfile(env.profilePath);
      const connection = resolveConnection({
        flags: { url: globals.url, token: globals.token },
        env,
        profile,
      });
      return client(connection.url, connection.token, connection.tokenSource);
    },
  };
  const client = (url: string, token?: string, tokenSource?: TokenSource) =>
    new ApiClient({
      baseUrl: url,
      token,
      tokenSource,
      timeoutMs: ctx.environment().timeoutMs,
      userAgent: `outpost-cli/${VERSION}`,
    });

  const program = new Command('outpost')
    .description('Outpost command line: devices, enrollment, API tokens and release keys')
    // `--version` is also `firmware sign`'s (SURFACES.md): commander would take it for the
    // program's anywhere on the line, so the long form is answered in `run`, when alone.
    .version(VERSION, '-V', 'output the version number (also --version)')
    .exitOverride()
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .addOption(new Option('--json', 'print JSON for scripts'))
    .addOption(
      new Option('--url <url>', 'server URL (else OUTPOST_URL, else the profile)').argParser(
        parser(serverUrlSchema),
      ),
    )
    .addOption(
      new Option('--token <token>', 'API token (else OUTPOST_TOKEN, else the profile)').argParser(
        parser(apiTokenSchema),
      ),
    );

  registerLoginCommand(program, ctx);
  registerDeviceCommands(program, ctx);
  registerKeysCommands(program, ctx);
  registerFirmwareCommands(program, ctx);
  registerRolloutCommands(program, ctx);
  registerTokenCommands(program, ctx);
  registerAlertCommands(program, ctx);
  registerTelemetryCommands(program, ctx);
  return program;
}

/** Runs one command line; resolves to the exit code (0, 1 failed, 2 usage). */
async function run(argv: readonly string[], io: Io): Promise<number> {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    io.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed its message; help and --version are not failures.
      return err.exitCode === 0 ? 0 : 2;
    }
    io.stderr.write(`${errorLine(err)}\n`);
    if (err instanceof CliError) {
      for (const line of err.more) io.stderr.write(`  ${line}\n`);
    }
    if (wantsJson(argv)) {
      io.stdout.write(`${JSON.stringify({ error: errorJson(err) }, null, 2)}\n`);
    }
    return err instanceof CliError ? err.exitCode : 1;
  }
}

function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

function errorJson(err: unknown) {
  if (err instanceof CliError) {
    return {
      code: err.code,
      message: err.message,
      ...(err.hint ? { hint: err.hint } : {}),
      ...(err.details ?? {}),
    };
  }
  return { code: 'internal', message: err instanceof Error ? err.message : String(err) };
}

// A closed pipe (`outpost device list | head`) ends the output, not with a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

process.exitCode = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  now: Date.now,
});
