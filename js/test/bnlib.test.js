// Unit tests of js/bnlib.js on Node's built-in runner: `node --test js/test/` (make test).
// Oracles: numbers PyTorch printed (written out below), finite differences, closed forms.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ONE_VALUE_ERROR, backward, batchStats, forward } from "../bnlib.js";
import { normal } from "../random.js";

/** The blog's 2×2×2×2 tensor (chapter 1), N, C, H, W order. */
const BLOG_X = Float64Array.from([1, 1, 1, 2, -1, 1, 0, 1, 0, -1, 2, 2, 0, -1, 3, 1]);
const BLOG_SHAPE = [2, 2, 2, 2];

function assertClose(actual, expected, tol = 1e-12, what = "") {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const scale = Math.max(1, ...Array.from(expected, Math.abs));
  actual.forEach((a, i) => {
    const e = expected[i];
    assert.ok(Math.abs(a - e) <= tol * scale, `${what}[${i}]: ${a} ≠ ${e}`);
  });
}

describe("the blog's tensor, against PyTorch 2.13.0", () => {
  test("BatchNorm2d(2, affine=False) in training: torch's float32 output", () => {
    const { y, mean, var: v } = forward(BLOG_X, BLOG_SHAPE);
    // print(torch.nn.BatchNorm2d(2, affine=False)(x).flatten().tolist()), x float32
    const torchY = [
      0.0, 0.0, 0.0, 0.9999949932098389, -1.224740743637085, 0.4082469344139099,
      -0.4082469344139099, 0.4082469344139099, -0.9999949932098389, -1.9999899864196777,
      0.9999949932098389, 0.9999949932098389, -0.4082469344139099, -1.224740743637085,
      2.0412347316741943, 0.4082469344139099,
    ];
    assertClose(y, torchY, 1e-7, "y"); // float32 precision
    assertClose(mean, [1, 0.5], 1e-15, "mean");
    assertClose(v, [1, 1.5], 1e-15, "biased variance");
  });

  test("an option given as undefined keeps torch's default (training, eps 1e-5)", () => {
    const plain = forward(BLOG_X, BLOG_SHAPE);
    const given = forward(BLOG_X, BLOG_SHAPE, { eps: undefined, training: undefined });
    assertClose(given.y, plain.y, 0, "y");
    assertClose(given.mean, [1, 0.5], 1e-15, "batch mean: training mode");
  });

  // torch.nn.BatchNorm2d(2, dtype=torch.float64), weight [2, -0.5], bias [0.25, 1];
  // dy = torch.arange(16).reshape(2, 2, 2, 2) / 4 - 1
  const gamma = [2, -0.5];
  const beta = [0.25, 1];
  const dy = Float64Array.from({ length: 16 }, (_, i) => i / 4 - 1);

  test("affine, float64: output, running statistics and gradients in training", () => {
    const out = forward(BLOG_X, BLOG_SHAPE, { gamma, beta });
    assertClose(out.y, [
      0.25, 0.25, 0.25, 2.2499900000749995, 1.6123703944645482, 0.7958765351784838,
      1.204123464821516, 0.7958765351784838, -1.7499900000749995, -3.749980000149999,
      2.2499900000749995, 2.2499900000749995, 1.204123464821516, 1.6123703944645482,
      -0.02061732410758066, 0.7958765351784838,
    ], 1e-14, "y");
    assertClose(out.runningMean, [0.1, 0.05], 1e-15, "running_mean");
    assertClose(out.runningVar, [1.0142857142857142, 1.0714285714285714], 1e-15, "running_var");
    assert.equal(out.numBatchesTracked, 1);
    const grads = backward(dy, BLOG_X, BLOG_SHAPE, { gamma, beta });
    assertClose(grads.dx, [
      -2.7499862501031243, -2.2499887500843743, -1.7499912500656245, -1.1249956250234374,
      0.3827326872526161, 0.5188134095172623, 0.2976804497688021, 0.31468994469574624,
      1.1249956250234374, 1.4999950000187499, 2.374986875107812, 2.8749843751265614,
      -0.31468994469574624, -0.5358229044442064, -0.16159972750415588, -0.5018039145903183,
    ], 1e-14, "dx");
    assertClose(grads.dgamma, [-0.4999975000187499, 2.8577285075012258], 1e-14, "dgamma");
    assertClose(grads.dbeta, [3, 11], 1e-15, "dbeta");
  });

  test("affine, float64: after one step, evaluation mode", () => {
    const step = forward(BLOG_X, BLOG_SHAPE, { gamma, beta });
    const evalOpts = {
      gamma, beta, training: false, runningMean: step.runningMean, runningVar: step.runningVar,
    };
    const out = forward(BLOG_X, BLOG_SHAPE, evalOpts);
    assertClose(out.y, [
      2.037270182077225, 2.037270182077225, 2.037270182077225, 4.023125939940808,
      1.5071958192083301, 0.5411085445257966, 1.0241521818670634, 0.5411085445257966,
      0.05141442421364165, -1.9344413336499418, 4.023125939940808, 4.023125939940808,
      1.0241521818670634, 1.5071958192083301, -0.4249787301567371, 0.5411085445257966,
    ], 1e-14, "y");
    assertClose(out.runningMean, step.runningMean, 0, "running_mean unchanged");
    assert.equal(out.numBatchesTracked, 0); // the count given (none): eval does not count
    const grads = backward(dy, BLOG_X, BLOG_SHAPE, evalOpts);
    assertClose(grads.dx, [
      -1.9858557578635834, -1.4893918183976875, -0.9929278789317917, -0.49646393946589584,
      -0.0, -0.1207609093353167, -0.2415218186706334, -0.3622827280059501,
      1.9858557578635834, 2.482319697329479, 2.978783636795375, 3.475247576261271,
      -0.9660872746825336, -1.0868481840178503, -1.2076090933531671, -1.3283700026884837,
    ], 1e-14, "dx");
    assertClose(grads.dgamma, [2.1844413336499406, 8.16343747106741], 1e-14, "dgamma");
    assertClose(grads.dbeta, [3, 11], 1e-15, "dbeta");
  });
});

describe("running statistics", () => {
  const shape = [3, 2, 2, 1];
  const a = normal(12, 1);
  const b = normal(12, 2).map((v) => 3 * v + 5);

  test("momentum null is the plain average of the batches so far (torch's 1/t)", () => {
    const first = forward(a, shape, { momentum: null });
    const second = forward(b, shape, { momentum: null, ...pick(first) });
    const sa = batchStats(a, shape);
    const sb = batchStats(b, shape);
    const m = 6;
    for (let c = 0; c < 2; c++) {
      const meanAvg = (sa.mean[c] + sb.mean[c]) / 2;
      const varAvg = ((sa.var[c] + sb.var[c]) * m) / (m - 1) / 2;
      assert.ok(Math.abs(second.runningMean[c] - meanAvg) < 1e-14);
      assert.ok(Math.abs(second.runningVar[c] - varAvg) < 1e-13);
    }
    assert.equal(second.numBatchesTracked, 2);
  });

  test("momentum p: r ← (1 − p)·r + p·(batch mean, unbiased variance)", () => {
    const out = forward(b, shape, { momentum: 0.3, runningMean: [1, 2], runningVar: [3, 4] });
    const s = batchStats(b, shape);
    assertClose(out.runningMean, [0.7 * 1 + 0.3 * s.mean[0], 0.7 * 2 + 0.3 * s.mean[1]]);
    assertClose(out.runningVar, [0.7 * 3 + 0.3 * s.var[0] * 1.2, 0.7 * 4 + 0.3 * s.var[1] * 1.2]);
  });

  test("runningMean null: no buffers, batch statistics in evaluation too", () => {
    const out = forward(b, shape, { training: false, runningMean: null, runningVar: null });
    assert.equal(out.runningMean, null);
    assertClose(out.y, forward(b, shape).y, 0, "y");
  });

  test("inputs are never modified", () => {
    const x = Float64Array.from(b);
    const runningMean = Float64Array.from([1, 2]);
    forward(x, shape, { runningMean, runningVar: [1, 1] });
    assertClose(x, b, 0, "x");
    assertClose(runningMean, [1, 2], 0, "runningMean");
  });
});

function pick({ runningMean, runningVar, numBatchesTracked }) {
  return { runningMean, runningVar, numBatchesTracked };
}

describe("statistics", () => {
  test("mean 1e4: the two-pass variance keeps its digits", () => {
    const z = normal(64, 3);
    const x = z.map((v) => 1e4 + 1e-3 * v);
    const shifted = batchStats(z.map((v) => 1e-3 * v), [64, 1, 1, 1]);
    const big = batchStats(x, [64, 1, 1, 1]);
    assert.ok(Math.abs(big.var[0] - shifted.var[0]) < 1e-9 * shifted.var[0]);
  });

  test("a constant channel: variance 0, output β (ε keeps it finite)", () => {
    const out = forward(new Float64Array(8).fill(7), [2, 1, 2, 2], { beta: [0.5] });
    assert.equal(out.var[0], 0);
    assert.ok(out.y.every((v) => v === 0.5));
  });
});

describe("backward against finite differences", () => {
  // L = Σ w·y for fixed random weights w, so ∂L/∂y = w; central differences of L.
  const cases = [
    { name: "random 3×2×2×3", shape: [3, 2, 2, 3], training: true },
    { name: "N = 1, H·W > 1", shape: [1, 3, 2, 2], training: true },
    { name: "1×1 maps", shape: [5, 2, 1, 1], training: true },
    { name: "evaluation mode", shape: [2, 2, 2, 2], training: false },
  ];
  for (const { name, shape, training } of cases) {
    test(name, () => {
      const size = shape.reduce((p, d) => p * d);
      const C = shape[1];
      const x = normal(size, 11).map((v) => 2 * v + 1);
      const w = normal(size, 12);
      const opts = {
        training,
        eps: 0.1,
        gamma: normal(C, 13),
        beta: normal(C, 14),
        runningMean: normal(C, 15),
        runningVar: normal(C, 16).map((v) => 1 + v * v),
      };
      const loss = (xs, o = opts) => forward(xs, shape, o).y.reduce((s, y, i) => s + y * w[i], 0);
      const h = 1e-5;
      const { dx, dgamma, dbeta } = backward(w, x, shape, opts);
      const numeric = Array.from(x, (_, i) => {
        const plus = Float64Array.from(x);
        const minus = Float64Array.from(x);
        plus[i] += h;
        minus[i] -= h;
        return (loss(plus) - loss(minus)) / (2 * h);
      });
      assertClose(dx, numeric, 1e-7, "dx");
      const perChannel = (key) =>
        Array.from({ length: C }, (_, c) => {
          const plus = Float64Array.from(opts[key]);
          const minus = Float64Array.from(opts[key]);
          plus[c] += h;
          minus[c] -= h;
          return (loss(x, { ...opts, [key]: plus }) - loss(x, { ...opts, [key]: minus })) / (2 * h);
        });
      assertClose(dgamma, perChannel("gamma"), 1e-7, "dgamma");
      assertClose(dbeta, perChannel("beta"), 1e-7, "dbeta");
    });
  }
});

describe("bad input gets a clear error", () => {
  test("one value per channel in training: torch's words", () => {
    for (const f of [() => forward([1, 2], [1, 2, 1, 1]), () => backward([1, 1], [1, 2], [1, 2, 1, 1])]) {
      assert.throws(f, (err) => err instanceof Error && err.message.includes(ONE_VALUE_ERROR));
    }
    assert.equal(ONE_VALUE_ERROR, "Expected more than 1 value per channel when training");
  });

  test("…but evaluation mode normalizes a single value with the running statistics", () => {
    const out = forward([3, 4], [1, 2, 1, 1], { training: false });
    assertClose(out.y, [3 / Math.sqrt(1 + 1e-5), 4 / Math.sqrt(1 + 1e-5)]);
  });

  const bad = [
    ["shape", () => forward([1, 2], [2, 1, 1]), /shape must be \[N, C, H, W\]/],
    ["length", () => forward([1, 2, 3], [2, 1, 1, 1]), /x must have 2 values/],
    ["NaN", () => forward([1, NaN], [2, 1, 1, 1]), /not a finite number/],
    ["eps 0", () => forward([1, 2], [2, 1, 1, 1], { eps: 0 }), /eps must be a positive/],
    ["momentum 2", () => forward([1, 2], [2, 1, 1, 1], { momentum: 2 }), /momentum must be/],
    ["gamma", () => forward([1, 2], [2, 1, 1, 1], { gamma: [1, 2] }), /gamma must have 1/],
    ["dy", () => backward([1], [1, 2], [2, 1, 1, 1]), /dy must have 2 values/],
  ];
  for (const [name, f, pattern] of bad) {
    test(name, () => assert.throws(f, pattern));
  }
});
