import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

/**
 * TensorFlow.js on its WebAssembly backend: the wasm binary ships inside the npm package, so
 * nothing is downloaded, and it is several times faster than the pure-JS backend on a CPU.
 */
export async function readyTf(): Promise<typeof tf> {
  if (tf.getBackend() !== 'wasm') await tf.setBackend('wasm');
  await tf.ready();
  return tf;
}

export { tf };
