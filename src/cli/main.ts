import { Command, CommanderError } from 'commander';
import { registerDaemon } from './daemon.js';
import { registerDemo } from './demo.js';
import { reportError } from './errors.js';
import { registerMerge } from './merge.js';
import { registerOperate } from './operate.js';
import { registerHistory } from './history.js';
import { registerReport } from './report.js';
import { registerShow } from './show.js';
import { registerStatus } from './status.js';
import { registerVerify } from './verify.js';
import { cmergeVersion } from '../util/version.js';

const program = new Command('cmerge')
  .description('continual model merging: OPCM, DOP and baselines over safetensors checkpoints')
  .version(cmergeVersion())
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

registerMerge(program);
registerDaemon(program);
registerDemo(program);
registerStatus(program);
registerHistory(program);
registerShow(program);
registerVerify(program);
registerReport(program);
registerOperate(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? 0 : 2;
  else process.exitCode = reportError(e);
}
