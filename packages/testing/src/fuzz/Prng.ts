/**
 * A seeded pseudo-random generator (mulberry32): the fuzzer draws every choice from it, so one
 * seed always produces the same requests in the same order and a failing run can be replayed.
 */
export interface Prng {
  /** A float in [0, 1). */
  readonly next: () => number
  /** An integer in [0, bound). */
  readonly int: (bound: number) => number
  readonly pick: <A>(items: ReadonlyArray<A>) => A
  /** `count` distinct items, in a seeded order (all of them when `count` is larger). */
  readonly sample: <A>(items: ReadonlyArray<A>, count: number) => Array<A>
}

export const makePrng = (seed: number): Prng => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (bound: number) => Math.floor(next() * bound)
  const pick = <A>(items: ReadonlyArray<A>): A => items[int(items.length)] as A
  const sample = <A>(items: ReadonlyArray<A>, count: number): Array<A> => {
    const copy = [...items]
    for (let i = copy.length - 1; i > 0; i--) {
      const j = int(i + 1)
      const swap = copy[i] as A
      copy[i] = copy[j] as A
      copy[j] = swap
    }
    return copy.slice(0, count)
  }
  return { next, int, pick, sample }
}
