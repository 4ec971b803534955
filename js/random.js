/**
 * Seeded random numbers for the playground's "randomise" and the explorers' batches: the same
 * seed gives the same numbers in every browser (Math.random cannot be seeded).
 *
 * mulberry32 (a 32-bit generator by Tommy Ettinger, public domain) gives uniform numbers in
 * [0, 1); the Box–Muller transform turns pairs of them into standard normal values.
 *
 * @module random
 */

/**
 * A generator of uniform numbers in [0, 1), fixed by `seed` (an integer).
 * @param {number} seed
 * @returns {() => number}
 */
export function uniform(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` standard normal values (mean 0, standard deviation 1) from `seed`.
 * @param {number} count
 * @param {number} seed
 * @returns {Float64Array}
 */
export function normal(count, seed) {
  const next = uniform(seed);
  const z = new Float64Array(count);
  for (let i = 0; i < count; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(1 - next())); // 1 − u in (0, 1]: no log(0)
    const angle = 2 * Math.PI * next();
    z[i] = radius * Math.cos(angle);
    if (i + 1 < count) z[i + 1] = radius * Math.sin(angle);
  }
  return z;
}
