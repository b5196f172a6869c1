import type { Command } from 'commander';
import type { ApiClient } from './api-client.js';
import type { Environment, TokenSource } from './config.js';
import type { Output } from './output.js';

/** Options every command accepts (SURFACES.md: `--json` for scripts, `--url`, `--token`). */
export interface GlobalOptions {
  json?: boolean;
  url?: string;
  token?: string;
}

/** What the composition root hands every command group. */
export interface CliContext {
  /** The parsed environment (read on first use). */
  environment(): Environment;
  /** Wall clock in ms, for ages and expiry times. */
  now(): number;
  output(command: Command): Output;
  /** A client for the server and token resolved from flags, environment and profile. */
  client(command: Command): Promise<ApiClient>;
  /** A client for a given server, with or without a token. */
  clientFor(url: string, token?: string, tokenSource?: TokenSource): ApiClient;
}

export function globalsOf(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}
