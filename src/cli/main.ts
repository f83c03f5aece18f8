import { Command, CommanderError } from 'commander';
import { reportError } from './errors.js';
import { registerMerge } from './merge.js';
import { cmergeVersion } from '../util/version.js';

const program = new Command('cmerge')
  .description('continual model merging: OPCM, DOP and baselines over safetensors checkpoints')
  .version(cmergeVersion())
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

registerMerge(program);
// `cmerge merge` runs once per checkpoint in scripts and benchmarks; the other commands' modules
// bring the daemon's HTTP server, SQLite, metrics and YAML (~0.15 s and ~15 MB of start-up), so
// they load only when the command line is not a merge (docs/performance.md).
if (process.argv[2] !== 'merge') {
  const modules = await Promise.all([
    import('./daemon.js'),
    import('./demo.js'),
    import('./status.js'),
    import('./history.js'),
    import('./show.js'),
    import('./verify.js'),
    import('./report.js'),
    import('./operate.js'),
  ]);
  const [daemon, demo, status, history, show, verify, report, operate] = modules;
  daemon.registerDaemon(program);
  demo.registerDemo(program);
  status.registerStatus(program);
  history.registerHistory(program);
  show.registerShow(program);
  verify.registerVerify(program);
  report.registerReport(program);
  operate.registerOperate(program);
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? 0 : 2;
  else process.exitCode = reportError(e);
}
