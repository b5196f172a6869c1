import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { generateKeyPair } from '@outpost/signing/keys';
import { Argument, type Command, Option } from 'commander';
import { z } from 'zod';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { algSchema, nameSchema, parser } from '../flags.js';
import { type ReleaseKey, releaseKeyListSchema, releaseKeySchema } from '../ota-schemas.js';
import { formatAge, renderKeyValue, renderTable } from '../output.js';
import { exists, fileError, makePrivateDir, writePrivateFile } from '../private-files.js';

/**
 * `outpost keys …`: release key pairs that sign firmware manifests (PROTOCOL.md §1), made
 * here; the service is told only their public halves (`keys add`) and never signs.
 */

const kidSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a kid is a 43-character thumbprint');

export function releaseKeyColumns(now: number) {
  return [
    { header: 'kid', value: (k: ReleaseKey) => k.kid },
    { header: 'alg', value: (k: ReleaseKey) => k.alg },
    { header: 'name', value: (k: ReleaseKey) => k.name ?? '-' },
    { header: 'state', value: (k: ReleaseKey) => (k.revokedAt ? 'revoked' : 'trusted') },
    { header: 'added', value: (k: ReleaseKey) => formatAge(k.createdAt, now) },
  ];
}

const PUBLIC_FILE_MODE = 0o644;

/** `release.json` → `release.pub.json`; `release` → `release.pub.json`. */
export function publicKeyPathOf(privatePath: string): string {
  return `${privatePath.replace(/\.json$/i, '')}.pub.json`;
}

export function registerKeysCommands(program: Command, ctx: CliContext): void {
  const keys = program.command('keys').description('release keys that sign firmware manifests');

  keys
    .command('generate')
    .description('make a release key pair: private JWK to FILE (0600), public JWK to FILE.pub.json')
    .requiredOption('--out <file>', 'where to write the private key')
    .addOption(
      new Option('--alg <alg>', 'key algorithm (EdDSA = Ed25519)')
        .choices(algSchema.options)
        .default('EdDSA')
        .argParser(parser(algSchema)),
    )
    .option('--force', 'replace existing key files')
    .action(
      async (flags: { out: string; alg: 'EdDSA' | 'ES256'; force?: boolean }, command: Command) => {
        const out = ctx.output(command);
        const privatePath = resolve(flags.out);
        const publicPath = publicKeyPathOf(privatePath);
        if (!flags.force) {
          for (const path of [privatePath, publicPath]) {
            if (await exists(path)) {
              throw new CliError('conflict', 'file_exists', `${path} already exists`, {
                hint: 'choose another --out, or pass --force to replace the key (the old one is lost)',
              });
            }
          }
        }
        await makePrivateDir(dirname(privatePath));
        const pair = await generateKeyPair(flags.alg);
        const overwrite = flags.force === true;
        await writePrivateFile(privatePath, `${JSON.stringify(pair.privateJwk, null, 2)}\n`, {
          overwrite,
        });
        await writePrivateFile(publicPath, `${JSON.stringify(pair.publicJwk, null, 2)}\n`, {
          overwrite,
          mode: PUBLIC_FILE_MODE,
        });
        out.result(
          { kid: pair.kid, alg: pair.alg, privateKey: privatePath, publicKey: publicPath },
          () =>
            renderKeyValue([
              ['kid', pair.kid],
              ['alg', pair.alg],
              ['private key', `${privatePath} (keep it secret)`],
              ['public key', publicPath],
            ]),
        );
      },
    );
  keys
    .command('add')
    .description('trust a release public key (FILE.pub.json) for firmware uploads and devices')
    .addArgument(new Argument('<file>', 'the public key, as `keys generate` wrote it'))
    .option('--name <name>', 'whose key it is', parser(nameSchema))
    .action(async (file: string, flags: { name?: string }, command: Command) => {
      const out = ctx.output(command);
      let publicKey: unknown;
      try {
        publicKey = JSON.parse(await readFile(file, 'utf8'));
      } catch (err) {
        throw err instanceof SyntaxError
          ? new CliError('invalid', 'key_invalid', `${file} is not a JSON key`)
          : fileError(err, file, 'cannot read the key');
      }
      if (typeof publicKey === 'object' && publicKey !== null && 'd' in publicKey) {
        throw new CliError('invalid', 'key_private', `${file} is a private key`, {
          hint: 'give the public half (FILE.pub.json); the private key never leaves this machine',
        });
      }
      const client = await ctx.client(command);
      const key = await client.post('/api/v1/release-keys', releaseKeySchema, {
        json: { publicKey, ...(flags.name ? { name: flags.name } : {}) },
      });
      out.result(key, () => `trusted release key ${key.kid}${key.name ? ` (${key.name})` : ''}`);
    });

  keys
    .command('list')
    .description('release keys the service trusts (and revoked ones)')
    .action(async (_flags: object, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const list = await client.get('/api/v1/release-keys', releaseKeyListSchema);
      out.result(list, () =>
        list.length === 0 ? 'no release keys' : renderTable(list, releaseKeyColumns(ctx.now())),
      );
    });

  keys
    .command('revoke')
    .description('stop trusting a release key; devices are told (never the last key)')
    .addArgument(
      new Argument('<kid>', 'key id (from `outpost keys list`)').argParser(parser(kidSchema)),
    )
    .action(async (kid: string, _flags: object, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const key = await client.delete(
        `/api/v1/release-keys/${encodeURIComponent(kid)}`,
        releaseKeySchema,
      );
      out.result(key, () => `revoked release key ${key.kid}`);
    });
}
