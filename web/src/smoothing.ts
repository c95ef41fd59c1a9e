// Curve smoothing as TensorBoard does it: an exponential moving average, debiased so the
// first points are not pulled towards zero. Weight 0 leaves a curve as it is; 0.99 flattens it.

/** The smoothed values of `values` with EMA `weight` in [0, 1). */
export function ema(values: number[], weight: number): number[] {
  const w = Math.min(Math.max(weight, 0), 0.999);
  if (w === 0) return values.slice();
  let last = 0;
  let count = 0;
  return values.map((v) => {
    if (!Number.isFinite(v)) return v;
    last = last * w + (1 - w) * v;
    count += 1;
    return last / (1 - Math.pow(w, count));
  });
}
