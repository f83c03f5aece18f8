import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Command } from 'commander';
import { COMMAND_MODULES, namedCommand } from '../../src/cli/commands.js';
import { cmerge } from '../helpers/cli.js';

const allCommands = COMMAND_MODULES.flatMap((m) => m.commands);

/** The npm packages a real `cmerge ARGS` process loads, from Node's module loader's debug lines. */
function packagesLoaded(args: string[]): Set<string> {
  const r = cmerge(args, { NODE_DEBUG: 'module' });
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  return new Set([...r.stderr.matchAll(/node_modules\/((?:@[\w.-]+\/)?[\w.-]+)/g)].map((m) => m[1]!));
}

describe('cli commands: each loads only its own module', () => {
  test('every module registers exactly the commands the table lists for it', async () => {
    for (const m of COMMAND_MODULES) {
      const program = new Command('cmerge');
      (await m.load())(program);
      assert.deepEqual(
        program.commands.map((c) => c.name()),
        [...m.commands],
      );
    }
    assert.equal(new Set(allCommands).size, allCommands.length, 'a command listed twice');
  });

  test('the command a line names: `help <command>` included, options and unknown names none', () => {
    assert.equal(namedCommand(['status', '--config', 'x.yaml']), 'status');
    assert.equal(namedCommand(['help', 'rollback']), 'rollback');
    assert.equal(namedCommand(['--help']), undefined);
    assert.equal(namedCommand(['help']), undefined);
    assert.equal(namedCommand([]), undefined);
    assert.equal(namedCommand(['stauts']), undefined);
  });

  test('`merge` and `status` leave the HTTP server, metrics and (for merge) SQLite unloaded; `daemon` loads them', () => {
    const daemon = packagesLoaded(['daemon', '--help']);
    // the check would pass vacuously if the debug lines changed form: the daemon must show them
    for (const p of ['fastify', 'prom-client', 'better-sqlite3']) assert.ok(daemon.has(p), `daemon loads ${p}`);
    const merge = packagesLoaded(['merge', '--help']);
    for (const p of ['fastify', 'prom-client', 'better-sqlite3']) assert.ok(!merge.has(p), `merge loads ${p}`);
    const status = packagesLoaded(['status', '--help']);
    assert.ok(status.has('better-sqlite3'));
    for (const p of ['fastify', 'prom-client', 'cli-progress']) assert.ok(!status.has(p), `status loads ${p}`);
  });

  test('`--help` lists every command; `help <command>` and `<command> --help` show that command', () => {
    const all = cmerge(['--help']);
    assert.equal(all.status, 0, all.stderr);
    for (const name of allCommands) assert.match(all.stdout, new RegExp(`^  ${name} `, 'm'), name);
    for (const args of [
      ['help', 'rollback'],
      ['rollback', '--help'],
      ['pause', '--help'],
    ]) {
      const r = cmerge(args);
      const name = args[0] === 'help' ? args[1] : args[0];
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Usage: cmerge ${name} `, 'm'));
    }
  });

  test("an unknown command exits 2 with commander's message and suggestion", () => {
    const r = cmerge(['stauts']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command 'stauts'/);
    assert.match(r.stderr, /Did you mean status\?/);
  });
});
