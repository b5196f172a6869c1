import { existsSync, renameSync, watch, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

/**
 * Preloaded into the ingest (`NODE_OPTIONS=--import=…/cpu-profiler.js`, since Node 20 does
 * not allow --cpu-prof there) to profile its event loop during the load only. The bench
 * creates `start` in OUTPOST_BENCH_PROFILE_DIR when the load begins and `stop` when every
 * reading is stored; the profile is then written there as `ingest.cpuprofile`.
 */
const dir = process.env.OUTPOST_BENCH_PROFILE_DIR;

if (dir !== undefined && dir !== '') {
  const session = new Session();
  session.connect();
  let state: 'idle' | 'running' | 'done' = 'idle';
  const post = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))),
    );
  const onChange = async () => {
    if (state === 'idle' && existsSync(join(dir, 'start'))) {
      state = 'running';
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: 1000 });
      await post('Profiler.start');
    } else if (state === 'running' && existsSync(join(dir, 'stop'))) {
      state = 'done';
      const { profile } = (await post('Profiler.stop')) as { profile: unknown };
      // Renamed into place, so the bench never reads half a file.
      writeFileSync(join(dir, 'ingest.cpuprofile.part'), JSON.stringify(profile));
      renameSync(join(dir, 'ingest.cpuprofile.part'), join(dir, 'ingest.cpuprofile'));
      watcher.close();
    }
  };
  const watcher = watch(dir, () => {
    onChange().catch((err: unknown) => process.stderr.write(`cpu profiler: ${String(err)}\n`));
  });
  watcher.unref();
}
