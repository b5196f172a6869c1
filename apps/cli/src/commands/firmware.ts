import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import {
  componentNameSchema,
  hardwareIdSchema,
  type Manifest,
  manifestSchema,
  semverSchema,
} from '@outpost/protocol/ota';
import { signManifest } from '@outpost/signing/manifest';
import { importSigningKey, type SigningKey } from '@outpost/signing/sign';
import { Argument, type Command } from 'commander';
import { z } from 'zod';
import type { CliContext } from '../context.js';
import { CliError, UsageError } from '../errors.js';
import { limitSchema, nameSchema, parser, repeatable } from '../flags.js';
import { type Firmware, firmwarePageSchema, firmwareSchema } from '../ota-schemas.js';
import { formatAge, formatBytes, progressBar, renderKeyValue, renderTable } from '../output.js';
import { exists, fileError, writePrivateFile } from '../private-files.js';

/**
 * `outpost firmware …` (SURFACES.md): sign a manifest offline with a release key, upload an
 * artifact with its manifest, list firmware. The release private key never leaves this
 * machine: only the signed manifest is sent.
 */

const MANIFEST_FILE_MODE = 0o644;
/** An upload is one request that may carry a large file over a slow link. */
const UPLOAD_TIMEOUT_MS = 60 * 60_000;
const MANIFEST_HEADER = 'x-outpost-manifest';
const PAGE_SIZE_ALL = 500;

/** `fw.bin` → `fw.bin.jws`. */
export function manifestPathOf(file: string): string {
  return `${file}.jws`;
}

/** Size and SHA-256 of a file, read as a stream. */
export async function digestFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of createReadStream(path)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (err) {
    throw fileError(err, path, 'cannot read');
  }
  return { size, sha256: hash.digest('hex') };
}

export interface SignFlags {
  name: string;
  component: string;
  version: string;
  hardware: string[];
  minVersion?: string;
}

/** The manifest payload (PROTOCOL.md §8) for an artifact, checked against the protocol. */
export function buildManifest(
  flags: SignFlags,
  digest: { size: number; sha256: string },
  nowMs: number,
): Manifest {
  const parsed = manifestSchema.safeParse({
    name: flags.name,
    component: flags.component,
    version: flags.version,
    hardware: [...new Set(flags.hardware)],
    size: digest.size,
    sha256: digest.sha256,
    ...(flags.minVersion ? { minVersion: flags.minVersion } : {}),
    createdAt: Math.floor(nowMs / 1000),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(
      `the manifest would be invalid: ${issue.path.join('.')}: ${issue.message}`,
    );
  }
  return parsed.data;
}

/** The payload of a manifest JWS, read without verifying it (the server verifies). */
export function readManifestPayload(jws: string, path: string): Manifest {
  const parts = jws.trim().split('.');
  let payload: unknown;
  try {
    if (parts.length !== 3) throw new Error('not a compact JWS');
    payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    throw new CliError('invalid', 'manifest_invalid', `${path} is not a signed manifest`, {
      hint: 'make one with `outpost firmware sign FILE --key KEY …`',
    });
  }
  const parsed = manifestSchema.safeParse(payload);
  if (!parsed.success) {
    throw new CliError('invalid', 'manifest_invalid', `${path} is not a valid manifest`, {
      hint: 'sign it again with `outpost firmware sign`',
    });
  }
  return parsed.data;
}

/** Refuses, before uploading, a file that is not the one the manifest describes. */
export function checkArtifact(
  manifest: Manifest,
  digest: { size: number; sha256: string },
  file: string,
): void {
  if (digest.size !== manifest.size || digest.sha256 !== manifest.sha256) {
    throw new CliError(
      'invalid',
      'artifact_mismatch',
      `${file} is not the artifact its manifest describes (${digest.size !== manifest.size ? `${digest.size} bytes, manifest says ${manifest.size}` : 'sha256 differs'})`,
      { hint: 'upload the file the manifest was signed for, or sign this one' },
    );
  }
}

async function readSigningKey(path: string): Promise<SigningKey> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw fileError(err, path, 'cannot read the key');
  }
  try {
    return await importSigningKey(JSON.parse(text));
  } catch {
    throw new CliError('invalid', 'key_invalid', `${path} is not a private release key`, {
      hint: 'make one with `outpost keys generate --out FILE` and pass that FILE',
    });
  }
}

export function firmwareColumns(now: number) {
  return [
    { header: 'id', value: (f: Firmware) => f.id },
    { header: 'component', value: (f: Firmware) => f.component },
    { header: 'version', value: (f: Firmware) => f.version },
    { header: 'name', value: (f: Firmware) => f.name },
    { header: 'hardware', value: (f: Firmware) => f.hardware.join(',') },
    { header: 'size', value: (f: Firmware) => formatBytes(f.size) },
    { header: 'sha256', value: (f: Firmware) => `${f.sha256.slice(0, 12)}…` },
    { header: 'uploaded', value: (f: Firmware) => formatAge(f.uploadedAt, now) },
  ];
}

export function registerFirmwareCommands(program: Command, ctx: CliContext): void {
  const firmware = program
    .command('firmware')
    .description('sign, upload and list firmware (role firmware)');

  firmware
    .command('sign')
    .description('sign a manifest for FILE with a release key, offline; writes FILE.jws')
    .addArgument(new Argument('<file>', 'the firmware image'))
    .requiredOption('--key <file>', 'the release private key (from `outpost keys generate`)')
    .requiredOption('--name <name>', 'what the firmware is, for people', parser(nameSchema))
    .requiredOption(
      '--component <name>',
      'device component it is for (e.g. main)',
      parser(componentNameSchema),
    )
    .requiredOption('--version <semver>', 'its version (semver.org)', parser(semverSchema))
    .requiredOption(
      '--hardware <id>',
      'hardware it runs on (repeatable)',
      repeatable(hardwareIdSchema),
    )
    .option('--min-version <semver>', 'the oldest version it may update from', parser(semverSchema))
    .option('--out <file>', 'where to write the manifest (default FILE.jws)')
    .option('--force', 'replace an existing manifest file')
    .action(
      async (
        file: string,
        flags: SignFlags & { key: string; out?: string; force?: boolean },
        command: Command,
      ) => {
        const out = ctx.output(command);
        const target = resolve(flags.out ?? manifestPathOf(file));
        if (!flags.force && (await exists(target))) {
          throw new CliError('conflict', 'file_exists', `${target} already exists`, {
            hint: 'choose another --out, or pass --force to replace it',
          });
        }
        const key = await readSigningKey(flags.key);
        const digest = await digestFile(file);
        const manifest = buildManifest(flags, digest, ctx.now());
        const jws = await signManifest(key, manifest);
        await writePrivateFile(target, `${jws}\n`, {
          overwrite: flags.force === true,
          mode: MANIFEST_FILE_MODE,
        });
        out.result({ manifest: target, kid: key.kid, payload: manifest }, () =>
          renderKeyValue([
            ['manifest', target],
            ['signed by', key.kid],
            ['component', manifest.component],
            ['version', manifest.version],
            ['hardware', manifest.hardware.join(',')],
            ['size', `${manifest.size} bytes`],
            ['sha256', manifest.sha256],
          ]),
        );
      },
    );

  firmware
    .command('upload')
    .description('upload FILE with its signed manifest; the server checks both')
    .addArgument(new Argument('<file>', 'the firmware image'))
    .requiredOption('--manifest <file>', 'its manifest (from `outpost firmware sign`)')
    .action(async (file: string, flags: { manifest: string }, command: Command) => {
      const out = ctx.output(command);
      let jws: string;
      try {
        jws = (await readFile(flags.manifest, 'utf8')).trim();
      } catch (err) {
        throw fileError(err, flags.manifest, 'cannot read the manifest');
      }
      const manifest = readManifestPayload(jws, flags.manifest);
      const size = await stat(file).then(
        (s) => s.size,
        (err: unknown) => {
          throw fileError(err, file, 'cannot read');
        },
      );
      out.progress(`checking ${file}…`);
      checkArtifact(manifest, await digestFile(file), file);
      const client = await ctx.client(command);
      let sent = 0;
      let drawn = 0;
      const draw = () => {
        drawn = Date.now();
        out.progress(
          `uploading ${file} ${progressBar(sent / size)} ${Math.floor((sent / size) * 100)}% ${formatBytes(sent)} of ${formatBytes(size)}`,
        );
      };
      const counted = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          sent += chunk.byteLength;
          if (Date.now() - drawn > 100 || sent === size) draw();
          controller.enqueue(chunk);
        },
      });
      const body = (
        Readable.toWeb(createReadStream(file)) as unknown as ReadableStream<Uint8Array>
      ).pipeThrough(counted);
      let stored: Firmware;
      try {
        stored = await client.request('POST', '/api/v1/firmware', {
          schema: firmwareSchema,
          body: { stream: body, contentType: 'application/octet-stream' },
          headers: { [MANIFEST_HEADER]: jws },
          timeoutMs: Math.max(UPLOAD_TIMEOUT_MS, ctx.environment().timeoutMs),
        });
      } finally {
        out.progressDone();
      }
      out.result(stored, () =>
        renderKeyValue([
          ['id', stored.id],
          ['component', stored.component],
          ['version', stored.version],
          ['size', formatBytes(stored.size)],
          ['sha256', stored.sha256],
          ['signed by', stored.kid],
        ]),
      );
    });

  firmware
    .command('list')
    .description('firmware, newest first')
    .option('--component <name>', 'only this component', parser(componentNameSchema))
    .option('--limit <n>', 'at most this many (1-500, default 100)', parser(limitSchema))
    .option('--all', 'every firmware, page after page')
    .action(
      async (flags: { component?: string; limit?: number; all?: boolean }, command: Command) => {
        const out = ctx.output(command);
        const client = await ctx.client(command);
        const items: Firmware[] = [];
        let next: string | null = null;
        do {
          const page: z.infer<typeof firmwarePageSchema> = await client.get(
            '/api/v1/firmware',
            firmwarePageSchema,
            {
              component: flags.component,
              limit: flags.limit ?? (flags.all ? PAGE_SIZE_ALL : undefined),
              ...(next ? { after: next } : {}),
            },
          );
          items.push(...page.items);
          next = page.next;
        } while (flags.all && next);
        out.result({ items, next }, () => {
          if (items.length === 0) return 'no firmware';
          if (next) out.note('more firmware exists: pass --all, or --limit up to 500');
          return renderTable(items, firmwareColumns(ctx.now()));
        });
      },
    );
}
