#!/usr/bin/env node
// `npm run demo`: the ingest on embedded defaults (./data), one edge agent with two serial
// sensors (firmware-sim on pty pairs) and a local MQTT sensor, plus a device that talks MQTT
// to the ingest directly. Prints the URL and the admin token; Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const root = resolve(import.meta.dirname, '..');
const bins = {
  ingest: join(root, 'apps/ingest/dist/main.js'),
  agent: join(root, 'apps/edge-agent/dist/main.js'),
  sim: join(root, 'firmware-sim/dist/main.js'),
  cli: join(root, 'apps/cli/dist/main.js'),
};
for (const [name, path] of Object.entries(bins)) {
  if (!existsSync(path)) {
    console.error(`${name} is not built (${path}): run \`npm run setup\` first.`);
    process.exit(1);
  }
}

// biome-ignore lint/suspicious/noUndeclaredEnvVars: the demo honours the ingest's own settings
const dataDir = resolve(process.env.INGEST_DATA_DIR ?? 'data');
const demoDir = join(dataDir, 'demo');
mkdirSync(demoDir, { recursive: true, mode: 0o700 });
// biome-ignore lint/suspicious/noUndeclaredEnvVars: the demo honours the ingest's own settings
const port = Number(process.env.INGEST_HTTP_PORT ?? 8080);
const url = `http://127.0.0.1:${port}`;
const children = [];

function start(name, args, env = {}) {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = join(demoDir, `${name}.log`);
  writeFileSync(log, '');
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', (chunk) => writeFileSync(log, chunk, { flag: 'a' }));
  }
  child.on('exit', (code, signal) => {
    if (!stopping) console.error(`${name} exited (${signal ?? code}); see ${log}`);
  });
  children.push(child);
  return child;
}

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  for (const child of children.reverse()) child.kill('SIGTERM');
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

async function waitFor(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

start('ingest', ['--enable-source-maps', bins.ingest], { INGEST_DATA_DIR: dataDir });
await waitFor('the ingest', async () => (await fetch(`${url}/readyz`)).ok);
const token =
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: the demo honours the ingest's own settings
  process.env.INGEST_BOOTSTRAP_TOKEN ?? readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
const api = async (method, path, body) => {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => ({})) };
};

// The gateway and its children; on a second run they exist already.
const agentDir = join(demoDir, 'agent');
if (!existsSync(join(agentDir, 'identity.json'))) {
  const enrollment = await api('POST', '/api/v1/enrollments', {
    deviceId: 'demo-gw',
    kind: 'gateway',
    tags: { site: 'demo' },
  });
  if (enrollment.status !== 201)
    throw new Error(`could not create the gateway: ${JSON.stringify(enrollment.body)}`);
  await new Promise((ok, fail) =>
    spawn(
      process.execPath,
      [
        bins.agent,
        'enroll',
        '--server',
        url,
        '--token',
        enrollment.body.token,
        '--data-dir',
        agentDir,
      ],
      { stdio: 'inherit' },
    ).on('exit', (code) => (code === 0 ? ok() : fail(new Error('agent enrollment failed')))),
  );
  await api('POST', '/api/v1/devices/import', [
    { id: 'boiler-1', gateway: 'demo-gw', tags: { site: 'demo', room: 'boiler' } },
    { id: 'boiler-2', gateway: 'demo-gw', tags: { site: 'demo', room: 'boiler' } },
    { id: 'room-1', gateway: 'demo-gw', tags: { site: 'demo', room: 'office' } },
  ]);
}

// Serial sensors on pty pairs: the simulator prints the path the agent opens for each.
const sim = start('sim-serial', [
  bins.sim,
  'serial',
  '--scenario',
  join(root, 'scripts/demo/serial.yaml'),
  '--pty-dir',
  join(demoDir, 'pty'),
]);
const ports = await new Promise((resolvePorts) => {
  const found = {};
  createInterface({ input: sim.stdout }).on('line', (line) => {
    try {
      const event = JSON.parse(line);
      if (event.event === 'pty') found[event.device] = event.appPath;
      if (event.event === 'ready') resolvePorts(found);
    } catch {
      // not an event line
    }
  });
});

const config = {
  server: url,
  dataDir: agentDir,
  sources: [
    ...Object.entries(ports).map(([device, path]) => ({
      serial: { port: path, parser: 'outpost-line', device },
    })),
    { mqtt: { listen: '127.0.0.1:1884', allowAnonymous: true } },
  ],
  batch: { maxRecords: 200, maxAge: '2s' },
  metrics: { listen: '127.0.0.1:9465' },
  state: { every: '15s' },
};
writeFileSync(join(demoDir, 'agent.yaml'), JSON.stringify(config, null, 2));
start('agent', [bins.agent, 'run', '--config', join(demoDir, 'agent.yaml')]);
start('sim-mqtt', [
  bins.sim,
  'mqtt',
  '--scenario',
  join(root, 'scripts/demo/mqtt.yaml'),
  '--server',
  url,
  '--admin-token',
  token,
]);

console.log(`
Outpost demo is running.
  dashboard and API   ${url}/   (docs: ${url}/api/docs)
  admin token         ${token}
  logs                ${demoDir}/*.log

Try, in another terminal:
  node apps/cli/dist/main.js login --url ${url} --token ${token}
  node apps/cli/dist/main.js device list
  node apps/cli/dist/main.js telemetry query boiler-1 --metric t --from -5m

Ctrl-C stops everything.`);
