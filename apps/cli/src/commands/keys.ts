import { dirname, resolve } from 'node:path';
import { generateKeyPair } from '@outpost/signing/keys';
import { type Command, Option } from 'commander';
import type { CliContext } from '../context.js';
import { CliError } from '../errors.js';
import { algSchema, parser } from '../flags.js';
import { renderKeyValue } from '../output.js';
import { exists, makePrivateDir, writePrivateFile } from '../private-files.js';

/** `outpost keys generate`: a release key pair for signing firmware manifests (PROTOCOL.md §1). */

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
}
