// Unit tests of js/simulate.js (the explorers' computations), against closed forms and
// plain recomputations that do not go through bnlib.js.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ONE_VALUE_ERROR } from "../bnlib.js";
import {
  BATCH,
  DRIFT,
  batchInput,
  batchPool,
  batchSizeCase,
  channelStds,
  driftingBatches,
  driftingMean,
  epsInput,
  histogram,
  idealOutput,
  lagAndNoise,
  linspace,
  runningMeans,
} from "../simulate.js";
import { forward } from "../bnlib.js";

const close = (a, b, tol) => Math.abs(a - b) <= tol;

test("ε input: channel c has variance exactly s_c², and outputs std √(σ²/(σ² + ε))", () => {
  const { x, shape } = epsInput();
  const eps = 1e-4;
  const stds = channelStds(forward(x, shape, { eps }).y, shape);
  [1, 0.1, 0.01, 0.001].forEach((s, c) => {
    const values = Array.from({ length: 16 }, (_, i) => x[i * 4 + c]);
    const mean = values.reduce((a, b) => a + b) / 16;
    const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / 16;
    assert.ok(close(variance, s * s, 1e-9 * s * s), `channel ${c}: ${variance}`);
    assert.ok(close(stds[c], Math.sqrt((s * s) / (s * s + eps)), 1e-9));
  });
});

test("running means: PyTorch's rule r ← (1 − p)r + p·(batch mean), and 1/t for null", () => {
  const batches = driftingBatches(3);
  const n = DRIFT.batchSize;
  const batchMean = (t) => batches.slice(t * n, (t + 1) * n).reduce((a, b) => a + b) / n;
  for (const p of [0, 0.05, 1]) {
    const running = runningMeans(batches, p);
    let r = 0;
    running.forEach((value, t) => {
      r = (1 - p) * r + p * batchMean(t);
      assert.ok(close(value, r, 1e-12), `p = ${p}, step ${t}`);
    });
  }
  const cumulative = runningMeans(batches, null);
  let sum = 0;
  cumulative.forEach((value, t) => {
    sum += batchMean(t);
    assert.ok(close(value, sum / (t + 1), 1e-12));
  });
});

test("the drifting stream: flat, ramp, flat; batches scatter with the stream's std", () => {
  const mean = driftingMean();
  assert.equal(mean[DRIFT.hold], 0);
  assert.equal(mean[DRIFT.hold + DRIFT.ramp], DRIFT.top);
  assert.equal(mean[DRIFT.steps - 1], DRIFT.top);
  const batches = driftingBatches(0);
  const residual = batches.map((v, i) => v - mean[Math.floor(i / DRIFT.batchSize)]);
  const sd = Math.sqrt(residual.reduce((a, v) => a + v * v, 0) / residual.length);
  assert.ok(close(sd, DRIFT.std, 0.05), `std ${sd}`);
  const { lag, noise } = lagAndNoise(mean, mean);
  assert.ok(lag === 0 && noise === 0); // -0 included
});

test("batch size 2: outputs ±1 (a hair less where ε matters); 3: none passes √2", () => {
  const pool = batchPool(1);
  const two = batchSizeCase(pool, 2).output;
  assert.ok(two.every((v) => Math.abs(v) <= 1));
  assert.ok(two.filter((v) => close(Math.abs(v), 1, 1e-3)).length >= 0.9 * two.length);
  const three = batchSizeCase(pool, 3).output;
  assert.ok(three.every((v) => Math.abs(v) <= Math.SQRT2));
});

test("batch size: statistics and the probe's output recomputed by hand", () => {
  const pool = batchPool(2);
  const size = 5;
  const { x } = batchInput(pool, size);
  const { mean, var: v, output } = batchSizeCase(pool, size);
  for (const t of [0, 17, BATCH.trials - 1]) {
    const values = Array.from({ length: size }, (_, n) => x[n * BATCH.trials + t]);
    const mu = values.reduce((a, b) => a + b) / size;
    assert.ok(close(mean[t], mu, 1e-12));
    assert.ok(close(v[t], values.reduce((a, w) => a + (w - mu) ** 2, 0) / size, 1e-12));
    values[0] = BATCH.mean + BATCH.std;
    const pm = values.reduce((a, b) => a + b) / size;
    const pv = values.reduce((a, w) => a + (w - pm) ** 2, 0) / size;
    assert.ok(close(output[t], (values[0] - pm) / Math.sqrt(pv + BATCH.eps), 1e-12));
  }
  assert.ok(close(idealOutput(), 2 / Math.sqrt(4 + 1e-5), 1e-15));
});

test("batch size 1: bnlib.js refuses, in torch's words", () => {
  assert.throws(() => batchSizeCase(batchPool(0), 1), new RegExp(ONE_VALUE_ERROR));
  assert.throws(() => batchInput(batchPool(0), 129), /from 1 to 128/);
});

test("histogram: fractions per bin, out-of-range values in the end bins", () => {
  const edges = linspace(0, 4, 5); // [0, 1, 2, 3, 4]
  assert.deepEqual(Array.from(edges), [0, 1, 2, 3, 4]);
  const h = histogram([-5, 0, 0.5, 1, 2.999, 3, 4, 9], edges);
  assert.deepEqual(Array.from(h, (f) => f * 8), [3, 1, 1, 3]);
});
