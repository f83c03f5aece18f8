/**
 * The engine that was asked for cannot run here (`--engine cuda` without a usable GPU). The
 * message is one line naming what is missing: driver, library (and the sonames tried) or device.
 */
export class EngineUnavailableError extends Error {
  override readonly name = 'EngineUnavailableError';
}

/**
 * The device is lost for this process (a sticky CUDA error: illegal address, launch failure,
 * ECC error...): every later call would fail too. The daemon logs it and exits non-zero so that
 * systemd restarts it, the checkpoint still queued (docs/cuda-engine.md).
 */
export class EngineFatalError extends Error {
  override readonly name = 'EngineFatalError';
}

/**
 * A long job ended early because its engine's stop flag was set (EngineOptions.stop): whoever set
 * it is abandoning the work, and what the job computed so far is thrown away.
 */
export class EngineStoppedError extends Error {
  override readonly name = 'EngineStoppedError';
  constructor() {
    super('engine job stopped on request');
  }
}
