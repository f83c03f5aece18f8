import { Command, CommanderError } from 'commander';
import { reportError } from './errors.js';
import { registerCommands } from './commands.js';
import { cmergeVersion } from '../util/version.js';

const program = new Command('cmerge')
  .description('continual model merging: OPCM, DOP and baselines over safetensors checkpoints')
  .version(cmergeVersion())
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

await registerCommands(program, process.argv.slice(2));

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode === 0 ? 0 : 2;
  else process.exitCode = reportError(e);
}
