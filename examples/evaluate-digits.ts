/**
 * An evaluator, written the way a user writes one for their own models (docs/evaluator.md): the
 * daemon runs it on each published version with the version's folder as the last argument, and
 * it prints one JSON object of per-task scores on stdout, e.g. {"rot45": 0.91, "parity": 0.88}.
 * Exit status 0 on success; anything else (and a message on stderr) marks the evaluation failed.
 *
 * This one scores the digits models of `cmerge demo` and the quality benchmark: for every task
 * whose head the model carries, the accuracy of that head over the merged backbone on the task's
 * held-out test digits.
 */
import { evaluateModel } from '../src/demo/digits/evaluate.js';

async function main(argv: string[]): Promise<number> {
  const versionDir = argv.at(-1);
  if (argv.length !== 1 || !versionDir) {
    process.stderr.write('usage: evaluate-digits <version folder or .safetensors file>\n');
    return 2;
  }
  const scores = await evaluateModel(versionDir);
  if (Object.keys(scores).length === 0) {
    process.stderr.write(`${versionDir}: no task head (heads.<task>.weight) in this model\n`);
    return 1;
  }
  process.stdout.write(JSON.stringify(scores) + '\n');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e: Error) => {
    process.stderr.write(`evaluate-digits: ${e.message}\n`);
    process.exitCode = 1;
  },
);
