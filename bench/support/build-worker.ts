/**
 * Bench helper, run as a child process by {@link BuildProcess}: loads one
 * checkout's build (argv[2]) and runs the calls its parent sends, one at a
 * time, each a function of a bench/support module that takes the build as
 * its first argument. One build per process: a second copy of undici in the
 * same process distorts both.
 */
import { loadBuild } from './builds.js';

interface CallMessage {
  id: number;
  module: string;
  fn: string;
  args: unknown;
}

const build = await loadBuild(process.argv[2]!);
process.on('message', (m: CallMessage) => {
  void (async () => {
    try {
      const mod = (await import(new URL(m.module, import.meta.url).href)) as Record<string, (b: typeof build, args: unknown) => unknown>;
      const fn = mod[m.fn];
      if (typeof fn !== 'function') throw new Error(`${m.module} has no export ${m.fn}`);
      process.send!({ id: m.id, ok: true, value: await fn(build, m.args) });
    } catch (e) {
      process.send!({ id: m.id, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    }
  })();
});
// The parent went away: nothing else keeps this process useful.
process.on('disconnect', () => process.exit(0));
process.send!({ ready: true, versions: build.versions });
