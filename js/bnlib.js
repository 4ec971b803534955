/**
 * Batch normalization in plain JavaScript: `torch.nn.BatchNorm2d`'s math, forward beside
 * backward, in float64. The in-page twin of bnlib's `functional.py` (same formulas, same
 * names); the pages expose it as `window.bnlibjs`.
 *
 * An input `x` is a Float64Array in N, C, H, W order (`x[((n*C + c)*H + h)*W + w]`) with
 * `shape = [N, C, H, W]`. Channel c pools its m = N·H·W values ("per channel, over batch and
 * space"):
 *
 *   μ = Σx/m,   σ² = Σ(x − μ)²/m,   ρ = 1/√(σ² + ε),   x̂ = (x − μ)·ρ,   y = γ·x̂ + β
 *
 * Training normalizes with the batch's μ and biased σ², and moves the running statistics
 * towards μ and the *unbiased* variance σ²·m/(m − 1); evaluation normalizes with the running
 * statistics. Nothing is modified in place: every result is a new array.
 *
 * @module bnlib
 */

/** torch's words when a channel has a single value in training (its variance would be 0). */
export const ONE_VALUE_ERROR = "Expected more than 1 value per channel when training";

const DEFAULTS = Object.freeze({ eps: 1e-5, momentum: 0.1, training: true });

// ---------------------------------------------------------------------------------------
// Input checks: bad input gets an Error that says what was wrong and what to do
// ---------------------------------------------------------------------------------------

function checkShape(shape) {
  const ok =
    Array.isArray(shape) &&
    shape.length === 4 &&
    shape.every((d) => Number.isInteger(d) && d >= 1);
  if (!ok) {
    throw new TypeError(
      `shape must be [N, C, H, W], four positive integers; got ${JSON.stringify(shape)}`,
    );
  }
  return shape;
}

function asArray(a, length, name) {
  if (a == null || typeof a.length !== "number") {
    throw new TypeError(`${name} must be a Float64Array (or an array of numbers)`);
  }
  if (a.length !== length) {
    throw new RangeError(`${name} must have ${length} values for this shape, got ${a.length}`);
  }
  const out = a instanceof Float64Array ? a : Float64Array.from(a); // read, never written
  if (!out.every(Number.isFinite)) {
    throw new RangeError(`${name} holds a value that is not a finite number`);
  }
  return out;
}

/** A per-channel vector, or `fallback` (a number filled in, or null) when it is missing. */
function channelVector(v, C, name, fallback) {
  if (v == null) return fallback === null ? null : new Float64Array(C).fill(fallback);
  return asArray(v, C, name);
}

function checkEps(eps) {
  if (typeof eps !== "number" || !(eps > 0) || !Number.isFinite(eps)) {
    throw new RangeError(
      `eps must be a positive finite number (default 1e-5), got ${eps}; ` +
        "it is added to the variance under the square root to avoid division by zero",
    );
  }
  return eps;
}

function checkMomentum(momentum) {
  if (momentum === null) return null; // the cumulative average, 1/t at step t
  if (typeof momentum !== "number" || !(momentum >= 0 && momentum <= 1)) {
    throw new RangeError(
      `momentum must be a number in [0, 1] or null (PyTorch's default is 0.1), got ${momentum}`,
    );
  }
  return momentum;
}

function checkBatch(shape) {
  const [N, , H, W] = shape;
  if (N * H * W <= 1) {
    throw new RangeError(
      `${ONE_VALUE_ERROR}, got input size [${shape.join(", ")}]; use a batch with ` +
        "N*H*W > 1, or normalize with running statistics (training: false)",
    );
  }
}

/**
 * The options of forward and backward, checked, with torch's defaults filled in.
 * `runningMean`/`runningVar` missing (undefined) means a fresh module's buffers (0 and 1);
 * `null` means none are kept (`track_running_stats=False`: batch statistics in both modes).
 */
function options(opts, C) {
  // A key given as undefined is a key not given (as a Python keyword left at its default).
  const given = Object.fromEntries(
    Object.entries(opts ?? {}).filter(([, value]) => value !== undefined),
  );
  const o = { ...DEFAULTS, ...given };
  const tracked = o.runningMean !== null && o.runningVar !== null;
  return {
    eps: checkEps(o.eps),
    momentum: checkMomentum(o.momentum),
    training: Boolean(o.training),
    gamma: channelVector(o.gamma, C, "gamma", 1),
    beta: channelVector(o.beta, C, "beta", 0),
    runningMean: tracked ? channelVector(o.runningMean, C, "runningMean", 0) : null,
    runningVar: tracked ? channelVector(o.runningVar, C, "runningVar", 1) : null,
    numBatchesTracked: o.numBatchesTracked ?? 0,
  };
}

// ---------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------

/**
 * Calls `f(offset, length)` for each contiguous run of channel c's values: one H·W map per
 * image.
 */
function eachMap(shape, c, f) {
  const [N, C, H, W] = shape;
  for (let n = 0; n < N; n++) f((n * C + c) * H * W, H * W);
}

/**
 * Per-channel mean and *biased* variance (divide by m), as bnlib's `batch_stats`.
 * Two passes (no cancellation for large means), the second also corrects the mean by the
 * rounding left in the first (the corrected two-pass algorithm).
 *
 * @param {Float64Array} x the input, N, C, H, W order
 * @param {number[]} shape [N, C, H, W]
 * @returns {{mean: Float64Array, var: Float64Array}}
 */
export function batchStats(x, shape) {
  const [N, C, H, W] = checkShape(shape);
  x = asArray(x, N * C * H * W, "x");
  const m = N * H * W;
  const mean = new Float64Array(C);
  const variance = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let sum = 0;
    eachMap(shape, c, (off, len) => {
      for (let i = off; i < off + len; i++) sum += x[i];
    });
    const mu = sum / m;
    let d1 = 0;
    let d2 = 0;
    eachMap(shape, c, (off, len) => {
      for (let i = off; i < off + len; i++) {
        const d = x[i] - mu;
        d1 += d;
        d2 += d * d;
      }
    });
    mean[c] = mu + d1 / m;
    variance[c] = Math.max(0, (d2 - (d1 * d1) / m) / m);
  }
  return { mean, var: variance };
}

/** ρ = 1/√(σ² + ε) per channel: ε inside the square root. */
function invStd(variance, eps) {
  return variance.map((v) => 1 / Math.sqrt(v + eps));
}

// ---------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------

/**
 * y = (x − μ)·ρ·γ + β per channel, with the given μ and ρ (the batch's, or the running ones).
 */
function normalize(x, shape, mean, invstd, gamma, beta) {
  const y = new Float64Array(x.length);
  for (let c = 0; c < shape[1]; c++) {
    const scale = invstd[c] * gamma[c];
    eachMap(shape, c, (off, len) => {
      for (let i = off; i < off + len; i++) y[i] = (x[i] - mean[c]) * scale + beta[c];
    });
  }
  return y;
}

/**
 * The forward pass of `torch.nn.BatchNorm2d`.
 *
 * @param {Float64Array} x input, N, C, H, W order
 * @param {number[]} shape [N, C, H, W]
 * @param {object} [opts] `eps` (1e-5), `momentum` (0.1; null: cumulative average),
 *   `training` (true), `gamma`, `beta` (per channel; missing: 1 and 0, as `affine=False`),
 *   `runningMean`, `runningVar` (missing: a fresh module's 0 and 1; null: not kept),
 *   `numBatchesTracked` (0)
 * @returns {{y: Float64Array, mean: Float64Array, var: Float64Array,
 *   unbiasedVar: Float64Array, runningMean: Float64Array|null, runningVar: Float64Array|null,
 *   numBatchesTracked: number}} `mean`, `var` and `unbiasedVar` are the batch's statistics
 *   (in either mode; `unbiasedVar` is NaN when m = 1); the running statistics and the count
 *   are after this call (changed only in training).
 * @throws {RangeError} in training, when a channel has a single value (torch's words)
 */
export function forward(x, shape, opts = {}) {
  const [N, C, H, W] = checkShape(shape);
  x = asArray(x, N * C * H * W, "x");
  const o = options(opts, C);
  const m = N * H * W;
  const useBatchStats = o.training || o.runningMean === null;
  if (useBatchStats) checkBatch(shape);
  const stats = batchStats(x, shape);
  const unbiasedVar = stats.var.map((v) => (m > 1 ? (v * m) / (m - 1) : NaN));

  let { runningMean, runningVar, numBatchesTracked } = o;
  if (o.training && runningMean !== null) {
    numBatchesTracked += 1;
    const p = o.momentum ?? 1 / numBatchesTracked; // r ← (1 − p)·r + p·batch statistic
    runningMean = runningMean.map((r, c) => (1 - p) * r + p * stats.mean[c]);
    runningVar = runningVar.map((r, c) => (1 - p) * r + p * unbiasedVar[c]);
  }
  const [mean, variance] = useBatchStats ? [stats.mean, stats.var] : [o.runningMean, o.runningVar];
  const y = normalize(x, shape, mean, invStd(variance, o.eps), o.gamma, o.beta);
  return {
    y,
    mean: stats.mean,
    var: stats.var,
    unbiasedVar,
    runningMean,
    runningVar,
    numBatchesTracked,
  };
}

// ---------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------

/**
 * The backward pass: gradients of a loss L, given dy = ∂L/∂y, for the forward with the same
 * `x`, `shape` and `opts`. Per channel, with x̂ = (x − μ)·ρ:
 *
 *   dβ = Σ dy,   dγ = Σ dy·x̂,
 *   training:   dx = γρ/m · (m·dy − Σdy − x̂·Σdy·x̂)   (paths through μ and σ² included)
 *   evaluation: dx = γρ·dy                           (running statistics are constants)
 *
 * @param {Float64Array} dy ∂L/∂y, the shape of x
 * @param {Float64Array} x the forward's input
 * @param {number[]} shape [N, C, H, W]
 * @param {object} [opts] as for forward (`momentum` and `numBatchesTracked` play no part)
 * @returns {{dx: Float64Array, dgamma: Float64Array, dbeta: Float64Array}} dgamma and dbeta
 *   are computed even without gamma and beta (the gradients for γ = 1, β = 0)
 */
export function backward(dy, x, shape, opts = {}) {
  const [N, C, H, W] = checkShape(shape);
  x = asArray(x, N * C * H * W, "x");
  dy = asArray(dy, x.length, "dy");
  const o = options(opts, C);
  const m = N * H * W;
  const useBatchStats = o.training || o.runningMean === null;
  let mean;
  let variance;
  if (useBatchStats) {
    checkBatch(shape);
    ({ mean, var: variance } = batchStats(x, shape));
  } else {
    [mean, variance] = [o.runningMean, o.runningVar];
  }
  const invstd = invStd(variance, o.eps);
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const xhat = (i) => (x[i] - mean[c]) * invstd[c];
    eachMap(shape, c, (off, len) => {
      for (let i = off; i < off + len; i++) {
        dbeta[c] += dy[i]; // Σ dy
        dgamma[c] += dy[i] * xhat(i); // Σ dy·x̂
      }
    });
    const k = o.gamma[c] * invstd[c]; // γρ
    eachMap(shape, c, (off, len) => {
      for (let i = off; i < off + len; i++) {
        dx[i] = useBatchStats
          ? (k / m) * (m * dy[i] - dbeta[c] - xhat(i) * dgamma[c])
          : k * dy[i];
      }
    });
  }
  return { dx, dgamma, dbeta };
}
