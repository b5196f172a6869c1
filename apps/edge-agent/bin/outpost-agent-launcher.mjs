#!/usr/bin/env node
// outpost-agent-launcher: the small, stable program systemd starts instead of the agent. It
// lives outside the versioned directories (<root>/bin/) and is not replaced by self-updates,
// so a new agent version that cannot even start is still switched back.
//
//   node outpost-agent-launcher.mjs --root /opt/outpost-agent -- apps/edge-agent/dist/main.js run
//
// It starts `<root>/current/<entry> <args>` with the launcher's own Node flags and waits:
// - exit code 75 (the agent switched versions): start `current` again at once;
// - while <root>/trial.json says a new version is on trial: every start of it counts, and
//   after `maxBoots` starts `current` is switched back to the previous version, trial.json
//   records `rolled_back` with reason `crash_loop`, and the previous version (which reports
//   it) is started; an exit during the trial starts it again after a pause;
// - any other exit: the launcher exits with the same code (systemd's Restart=always).
// SIGTERM and SIGINT are passed on to the agent. Only Node's standard library is used, and
// trial.json has the format of apps/edge-agent/src/ota/trial-marker.ts: change both together.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const RESTART_EXIT_CODE = 75;
const VERSION_DIR = /^versions\/[0-9A-Za-z.+-]{1,64}$/;
const TRIAL_PAUSE_MS = 1000;

function usage(message) {
  process.stderr.write(`outpost-agent-launcher: ${message}\n`);
  process.stderr.write('usage: outpost-agent-launcher --root DIR -- ENTRY [ARGS...]\n');
  process.exit(2);
}

function parseArgs(argv) {
  let root;
  let i = 0;
  for (; i < argv.length; i++) {
    if (argv[i] === '--root') root = argv[++i];
    else if (argv[i] === '--') {
      i++;
      break;
    } else usage(`unknown option ${argv[i]}`);
  }
  const [entry, ...args] = argv.slice(i);
  if (!root) usage('--root is required');
  if (!entry || entry.startsWith('/') || entry.split('/').includes('..')) {
    usage('ENTRY must be a relative path inside a version directory');
  }
  return { root, entry, args };
}

function log(message, fields = {}) {
  // One JSON line, like the agent's own (pino) logs.
  process.stderr.write(
    `${JSON.stringify({ level: 40, time: Date.now(), service: 'outpost-agent-launcher', ...fields, msg: message })}\n`,
  );
}

function readMarker(root) {
  try {
    const m = JSON.parse(readFileSync(join(root, 'trial.json'), 'utf8'));
    const ok =
      m?.v === 1 &&
      ['switching', 'trial', 'rolled_back'].includes(m.phase) &&
      VERSION_DIR.test(m.from?.dir ?? '') &&
      VERSION_DIR.test(m.to?.dir ?? '') &&
      Number.isSafeInteger(m.boots) &&
      Number.isSafeInteger(m.maxBoots);
    return ok ? m : undefined;
  } catch {
    return undefined;
  }
}

function syncDir(dir) {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeMarker(root, marker) {
  const path = join(root, 'trial.json');
  const temp = join(root, `.trial.json.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', 0o644);
  try {
    writeFileSync(fd, `${JSON.stringify(marker, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  syncDir(root);
}

function currentDir(root) {
  try {
    return readlinkSync(join(root, 'current'));
  } catch {
    return undefined;
  }
}

function switchCurrent(root, dir) {
  const temp = join(root, `.current-${randomBytes(6).toString('hex')}`);
  symlinkSync(dir, temp);
  renameSync(temp, join(root, 'current'));
  syncDir(root);
}

/** Counts a start of the version on trial; switches back after too many. True if on trial. */
function beforeStart(root) {
  const marker = readMarker(root);
  if (marker === undefined || marker.phase === 'rolled_back') return false;
  if (currentDir(root) !== marker.to.dir) return false;
  if (marker.boots >= marker.maxBoots) {
    log('the new version did not pass its trial in time: switching back', {
      from: marker.to.version,
      to: marker.from.version,
      boots: marker.boots,
    });
    switchCurrent(root, marker.from.dir);
    writeMarker(root, { ...marker, phase: 'rolled_back', reason: 'crash_loop' });
    return false;
  }
  writeMarker(root, { ...marker, boots: marker.boots + 1 });
  return true;
}

function run(root, entry, args, state) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, join(root, 'current', entry), ...args],
      {
        stdio: 'inherit',
      },
    );
    state.child = child;
    child.on('error', (err) => {
      log('cannot start the agent', { err: err.message });
      resolve({ code: 1, signal: null });
    });
    child.on('exit', (code, signal) => {
      state.child = undefined;
      resolve({ code, signal });
    });
  });
}

async function main() {
  const { root, entry, args } = parseArgs(process.argv.slice(2));
  const state = { child: undefined, stopping: false };
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      state.stopping = true;
      state.child?.kill(signal);
      if (state.child === undefined) process.exit(0);
    });
  }
  for (;;) {
    const onTrial = beforeStart(root);
    const { code, signal } = await run(root, entry, args, state);
    if (state.stopping) process.exit(code ?? 0);
    if (code === RESTART_EXIT_CODE) continue;
    const stillOnTrial =
      onTrial && readMarker(root)?.phase !== 'rolled_back' && readMarker(root) !== undefined;
    if (stillOnTrial) {
      log('the new version exited during its trial: starting it again', { code, signal });
      await sleep(TRIAL_PAUSE_MS);
      continue;
    }
    process.exit(code ?? 1);
  }
}

await main();
