import type { Command } from 'commander';
import { devicePageSchema } from '../api-schemas.js';
import { writeProfile } from '../config.js';
import { type CliContext, globalsOf } from '../context.js';
import { UsageError } from '../errors.js';

/** `outpost login --url URL --token TOKEN`: checks the token, then saves the profile. */
export function registerLoginCommand(program: Command, ctx: CliContext): void {
  program
    .command('login')
    .description(
      'check a server URL and API token (--url, --token, or OUTPOST_URL / OUTPOST_TOKEN) and save them as the profile',
    )
    .action(async (_options: object, command: Command) => {
      const globals = globalsOf(command);
      const env = ctx.environment();
      const url = globals.url ?? env.url;
      const token = globals.token ?? env.token;
      if (!url || !token) {
        throw new UsageError(
          `login needs ${!url ? '--url' : '--token'}`,
          'run `outpost login --url URL --token TOKEN`',
        );
      }
      const client = ctx.clientFor(url, token, globals.token ? 'flag' : 'env');
      // Any role may list devices, so this checks the token without needing more.
      await client.get('/api/v1/devices', devicePageSchema, { limit: 1 });
      await writeProfile(env.profilePath, { url, token });
      ctx
        .output(command)
        .result(
          { url, profile: env.profilePath },
          () => `logged in to ${url}; profile saved to ${env.profilePath}`,
        );
    });
}
