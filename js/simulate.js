/**
 * What the explorers of chapters 2 and 3 compute, with bnlib.js: pure functions, no page.
 *
 * The settings are those of the book's package (`bnbook.explorer_data` and
 * `bnbook.simulate`; the browser tests check that they agree). The random draws are this
 * module's own, from a seed (random.js), so the page needs no data from the build.
 *
 * @module simulate
 */

import { batchStats, forward } from "./bnlib.js";
import { normal } from "./random.js";

// ---------------------------------------------------------------------------------------
// ε: four channels, from ordinary to nearly constant
// ---------------------------------------------------------------------------------------

/** The ε example (bnbook.explorer_data.EPS_*): channel c is 5 + s_c·z over 16 values. */
export const EPS = Object.freeze({
  channelStds: Object.freeze([1, 0.1, 0.01, 0.001]),
  values: 16,
  center: 5,
  minExponent: -10,
  maxExponent: 0,
});

/**
 * The ε example's input, shape [16, 4, 1, 1]: channel c is `5 + s_c·z`, with z exactly
 * standardized (mean 0, biased standard deviation 1), so its batch variance is exactly s_c².
 * @param {number} [seed]
 */
export function epsInput(seed = 0) {
  const { values: n, channelStds, center } = EPS;
  const z = normal(n, seed);
  const { mean, var: v } = batchStats(z, [n, 1, 1, 1]);
  const C = channelStds.length;
  const x = new Float64Array(n * C);
  for (let i = 0; i < n; i++) {
    const zi = (z[i] - mean[0]) / Math.sqrt(v[0]);
    channelStds.forEach((s, c) => {
      x[i * C + c] = center + s * zi;
    });
  }
  return { x, shape: [n, C, 1, 1] };
}

/** Biased standard deviation of each channel of `y`. */
export function channelStds(y, shape) {
  return Array.from(batchStats(y, shape).var, Math.sqrt);
}

// ---------------------------------------------------------------------------------------
// Momentum: the running mean of a drifting stream
// ---------------------------------------------------------------------------------------

/**
 * The drifting stream (bnbook.simulate.DRIFT_*): population mean 0 for `hold` steps, a ramp
 * to `top` over `ramp` steps, then flat; standard deviation `std`; batches of `batchSize`.
 * Lag and noise are measured over the second half of the ramp (bnbook.explorer_data.MOMENTUM_WINDOW).
 */
export const DRIFT = Object.freeze({
  steps: 300,
  hold: 60,
  ramp: 180,
  top: 3,
  std: 2,
  batchSize: 16,
  window: Object.freeze([150, 240]), // [hold + ramp/2, hold + ramp): indices of the steps
});

/** Population mean of the drifting stream at each step. */
export function driftingMean() {
  const { steps, hold, ramp, top } = DRIFT;
  return Float64Array.from({ length: steps }, (_, t) =>
    top * Math.min(1, Math.max(0, (t - hold) / ramp)),
  );
}

/** The stream's batches: `steps` batches of `batchSize` values, batch after batch. */
export function driftingBatches(seed = 0) {
  const { steps, batchSize, std } = DRIFT;
  const population = driftingMean();
  const z = normal(steps * batchSize, seed);
  return z.map((v, i) => population[Math.floor(i / batchSize)] + std * v);
}

/**
 * `running_mean` after each batch of the stream, from a fresh module (0): every batch goes
 * through bnlib.js's training forward, which moves the running mean with `momentum`
 * (a number, or null for the cumulative average).
 */
export function runningMeans(batches, momentum) {
  const n = DRIFT.batchSize;
  const shape = [n, 1, 1, 1];
  const running = new Float64Array(batches.length / n);
  let state = { runningMean: [0], runningVar: [1], numBatchesTracked: 0 };
  for (let t = 0; t < running.length; t++) {
    const out = forward(batches.subarray(t * n, (t + 1) * n), shape, { momentum, ...state });
    const { runningMean, runningVar, numBatchesTracked } = out;
    state = { runningMean, runningVar, numBatchesTracked };
    running[t] = runningMean[0];
  }
  return running;
}

/**
 * Lag (mean of population − running) and noise (standard deviation of the error) over the
 * measuring window.
 */
export function lagAndNoise(running, population) {
  const [start, stop] = DRIFT.window;
  const error = Float64Array.from({ length: stop - start }, (_, i) =>
    running[start + i] - population[start + i],
  );
  const { mean, var: v } = batchStats(error, [error.length, 1, 1, 1]);
  return { lag: -mean[0], noise: Math.sqrt(v[0]) };
}

// ---------------------------------------------------------------------------------------
// Batch size: how batch statistics, and one input's output, scatter
// ---------------------------------------------------------------------------------------

/**
 * The batch-size example (bnbook.explorer_data.BATCH_TRIALS, channel 0 of bnbook.simulate's
 * population): `trials` batches of 1×1 values from N(mean, std²); the probe is mean + std.
 */
export const BATCH = Object.freeze({
  mean: 3,
  std: 2,
  trials: 400,
  maxSize: 128,
  eps: 1e-5,
});

/** Standard normal draws for every trial and batch position, trial after trial. */
export function batchPool(seed = 0) {
  return normal(BATCH.trials * BATCH.maxSize, seed);
}

/**
 * The trials at batch size `size` (the first `size` draws of each trial, so a larger batch
 * extends a smaller one), laid side by side as channels: shape [size, trials, 1, 1].
 * Batch norm keeps channels apart, so one call handles every trial.
 */
export function batchInput(pool, size) {
  const { trials, maxSize, mean, std } = BATCH;
  if (!(Number.isInteger(size) && size >= 1 && size <= maxSize)) {
    throw new RangeError(`batch size must be an integer from 1 to ${maxSize}, got ${size}`);
  }
  const x = new Float64Array(size * trials);
  for (let n = 0; n < size; n++) {
    for (let t = 0; t < trials; t++) x[n * trials + t] = mean + std * pool[t * maxSize + n];
  }
  return { x, shape: [size, trials, 1, 1] };
}

/**
 * Each trial's batch mean and biased variance, and the training-mode output of the probe
 * value put in place of each batch's first value. Batch size 1 throws bnlib.js's error
 * (torch's words): one value per channel has no variance.
 */
export function batchSizeCase(pool, size) {
  const { x, shape } = batchInput(pool, size);
  const { mean, var: v } = batchStats(x, shape);
  const probed = Float64Array.from(x);
  probed.fill(probe(), 0, BATCH.trials); // image 0 of every batch is the probe
  const { y } = forward(probed, shape, { eps: BATCH.eps });
  return { mean, var: v, output: y.slice(0, BATCH.trials) };
}

/** The probe value, one standard deviation above the population mean. */
export function probe() {
  return BATCH.mean + BATCH.std;
}

/** The probe's output in evaluation mode with the population's statistics: σ/√(σ² + ε). */
export function idealOutput() {
  return BATCH.std / Math.sqrt(BATCH.std ** 2 + BATCH.eps);
}

/** `n` evenly spaced values from `a` to `b`, both included (NumPy's linspace). */
export function linspace(a, b, n) {
  return Float64Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));
}

/**
 * The fraction of `values` in each bin between consecutive `edges` (the last bin includes
 * its right edge, as NumPy's histogram); values outside count in the end bins.
 */
export function histogram(values, edges) {
  const bins = edges.length - 1;
  const counts = new Float64Array(bins);
  const [lo, hi] = [edges[0], edges[bins]];
  for (const value of values) {
    const v = Math.min(hi, Math.max(lo, value));
    let k = Math.floor(((v - lo) / (hi - lo)) * bins);
    k = Math.min(bins - 1, k);
    while (k > 0 && v < edges[k]) k--; // rounding at an edge: as NumPy decides
    while (k < bins - 1 && v >= edges[k + 1]) k++;
    counts[k] += 1;
  }
  return counts.map((c) => c / values.length);
}
