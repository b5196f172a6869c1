import { Argument, type Command } from 'commander';
import {
  type ApiToken,
  apiTokenListSchema,
  apiTokenSchema,
  issuedTokenSchema,
} from '../api-schemas.js';
import type { CliContext } from '../context.js';
import { UsageError } from '../errors.js';
import {
  durationSchema,
  parser,
  repeatable,
  roleSchema,
  tokenIdSchema,
  tokenNameSchema,
} from '../flags.js';
import { formatAge, formatTime, renderKeyValue, renderTable } from '../output.js';

/** `outpost token …`: API tokens for people and scripts (SURFACES.md, role admin). */

const MAX_TOKEN_TTL_S = 5 * 365 * 24 * 3600;

export function tokenState(t: ApiToken, now: number): 'active' | 'revoked' | 'expired' {
  if (t.revokedAt !== null) return 'revoked';
  if (t.expiresAt !== null && t.expiresAt <= now) return 'expired';
  return 'active';
}

export function registerTokenCommands(program: Command, ctx: CliContext): void {
  const token = program.command('token').description('issue, list and revoke API tokens (admin)');

  token
    .command('create')
    .description('issue an API token; it is shown once')
    .requiredOption('--name <name>', 'who or what uses the token', parser(tokenNameSchema))
    .requiredOption(
      '--role <role...>',
      'viewer, operator, technician, firmware or admin (repeatable)',
      repeatable(roleSchema),
    )
    .option(
      '--ttl <duration>',
      'lifetime (e.g. 90d); without it the token does not expire',
      parser(durationSchema(60, MAX_TOKEN_TTL_S)),
    )
    .action(async (flags: { name: string; role: string[]; ttl?: number }, command: Command) => {
      const roles = [...new Set(flags.role)];
      if (roles.length > 5) throw new UsageError('at most 5 roles');
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const issued = await client.post('/api/v1/tokens', issuedTokenSchema, {
        json: { name: flags.name, roles, ...(flags.ttl ? { ttlSeconds: flags.ttl } : {}) },
      });
      out.result(issued, () => {
        out.note('the token is shown only now: store it where it is needed');
        return renderKeyValue([
          ['id', issued.id],
          ['name', issued.name],
          ['roles', issued.roles.join(',')],
          [
            'expires',
            issued.expiresAt === null ? 'never' : formatTime(issued.expiresAt, ctx.now()),
          ],
          ['token', issued.token],
        ]);
      });
    });

  token
    .command('list')
    .description('list API tokens (never their values)')
    .action(async (_flags: object, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const tokens = await client.get('/api/v1/tokens', apiTokenListSchema);
      const now = ctx.now();
      out.result(tokens, () =>
        tokens.length === 0
          ? 'no tokens'
          : renderTable(tokens, [
              { header: 'id', value: (t) => t.id },
              { header: 'name', value: (t) => t.name },
              { header: 'roles', value: (t) => t.roles.join(',') },
              { header: 'state', value: (t) => tokenState(t, now) },
              { header: 'created', value: (t) => formatAge(t.createdAt, now) },
              {
                header: 'expires',
                value: (t) => (t.expiresAt === null ? 'never' : formatTime(t.expiresAt, now)),
              },
              { header: 'last used', value: (t) => formatAge(t.lastUsedAt, now) },
            ]),
      );
    });

  token
    .command('revoke')
    .description('revoke an API token; it stops working at once')
    .addArgument(
      new Argument('<id>', 'token id (from `outpost token list`)').argParser(parser(tokenIdSchema)),
    )
    .action(async (id: string, _flags: object, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const revoked = await client.delete(
        `/api/v1/tokens/${encodeURIComponent(id)}`,
        apiTokenSchema,
      );
      out.result(revoked, () => `revoked token ${revoked.id} (${revoked.name})`);
    });
}
