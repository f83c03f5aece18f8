import type { Command } from 'commander';

type Register = (program: Command) => void;

/**
 * Every command's module, with the commands it registers. A module brings its own dependencies
 * (the daemon's HTTP server, chokidar, SQLite, metrics, YAML: up to ~0.3 s of start-up), so only
 * the module of the command on the command line loads (docs/performance.md).
 */
export const COMMAND_MODULES: ReadonlyArray<{ commands: readonly string[]; load: () => Promise<Register> }> = [
  { commands: ['merge'], load: async () => (await import('./merge.js')).registerMerge },
  { commands: ['daemon'], load: async () => (await import('./daemon.js')).registerDaemon },
  { commands: ['demo'], load: async () => (await import('./demo.js')).registerDemo },
  { commands: ['status'], load: async () => (await import('./status.js')).registerStatus },
  { commands: ['history'], load: async () => (await import('./history.js')).registerHistory },
  { commands: ['show'], load: async () => (await import('./show.js')).registerShow },
  { commands: ['verify'], load: async () => (await import('./verify.js')).registerVerify },
  { commands: ['report'], load: async () => (await import('./report.js')).registerReport },
  {
    commands: ['rollback', 'revert', 'pin', 'unpin', 'requeue', 'dequeue', 'pause', 'resume'],
    load: async () => (await import('./operate.js')).registerOperate,
  },
];

/**
 * The command that `args` (process.argv without node and the script) names, `help <command>`
 * included; undefined for none, an option first (`--help`, `--version`) or an unknown name.
 */
export function namedCommand(args: readonly string[]): string | undefined {
  const name = args[0] === 'help' ? args[1] : args[0];
  return COMMAND_MODULES.some((m) => m.commands.includes(name ?? '')) ? name : undefined;
}

/**
 * Registers the named command's module only; every module when the line names none, so that
 * `--help` lists all commands and an unknown name gets commander's suggestion.
 */
export async function registerCommands(program: Command, args: readonly string[]): Promise<void> {
  const name = namedCommand(args);
  const modules = name === undefined ? COMMAND_MODULES : COMMAND_MODULES.filter((m) => m.commands.includes(name));
  const registers = await Promise.all(modules.map((m) => m.load()));
  for (const register of registers) register(program);
}
