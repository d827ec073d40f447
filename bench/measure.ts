import { performance } from 'node:perf_hooks';
import { type Summary, summarize } from './report';

/**
 * In-process throughput loops: warm up (so V8 has optimised the code under test), size each round to about
 * `roundMs`, then time several rounds and summarise operations per second across rounds.
 */

export interface LoopOptions {
  warmupRounds: number;
  rounds: number;
  /** Target duration of one measured round. */
  roundMs: number;
}

export interface LoopResult {
  /** Operations per second, one sample per measured round. */
  opsPerSecond: Summary;
  opsPerRound: number;
}

export const DEFAULT_LOOP: LoopOptions = { warmupRounds: 3, rounds: 9, roundMs: 250 };

/** Results feed this sink so the optimiser cannot drop the work being measured. */
let sink = 0;
export function blackhole(): number {
  return sink;
}

function pass<T>(items: readonly T[], op: (item: T) => number): void {
  let acc = 0;
  for (const item of items) acc += op(item);
  sink = (sink + acc) | 0;
}

export function measureLoop<T>(
  items: readonly T[],
  op: (item: T) => number,
  options = DEFAULT_LOOP,
): LoopResult {
  if (items.length === 0) throw new RangeError('measureLoop needs at least one item');
  let passMs = 0;
  for (let i = 0; i < options.warmupRounds; i++) {
    const t0 = performance.now();
    pass(items, op);
    passMs = performance.now() - t0;
  }
  const passes = Math.max(1, Math.ceil(options.roundMs / Math.max(passMs, 0.001)));
  const samples: number[] = [];
  for (let r = 0; r < options.rounds; r++) {
    const t0 = performance.now();
    for (let p = 0; p < passes; p++) pass(items, op);
    const seconds = (performance.now() - t0) / 1000;
    samples.push((passes * items.length) / seconds);
  }
  return { opsPerSecond: summarize(samples), opsPerRound: passes * items.length };
}
